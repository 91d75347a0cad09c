"""Reads: the figures of SPEC sections 2 to 6, computed from stored balances and bills."""

from datetime import date
from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Round
from django.utils import timezone

from core.errors import DomainError
from core.money import CENT, ZERO, format_money

from . import messages

from .models import (Account, Bill, CreditChangeRecord, CreditContract, Enterprise, Folder, TransferPair,
                     TransferRecord, available_credit_expression)

MONEY_OUTPUT = DecimalField(max_digits=20, decimal_places=2)


def today() -> date:
    """The business day: the deployment's date (``settings.TIME_ZONE``). Bills fall due and alerts are counted by
    it, whatever timezone a request may activate (the console activates none). Named explicitly, it also spares
    the active-timezone lookup (asgiref's locals), 8 % of a transfer's Python (bench/RESULTS.md, section 2)."""
    return timezone.localdate(timezone.now(), timezone.get_default_timezone())


# --- Overdue (R-MON-2): the unpaid part of bills past their due date. Derived, never stored. ---

def overdue_bills(*, on: date | None = None):
    return Bill.objects.filter(unpaid_amount__gt=0, due_date__lt=on or today())


def overdue_amount(account: Account, *, on: date | None = None) -> Decimal:
    total = overdue_bills(on=on).filter(account=account).aggregate(s=Sum("unpaid_amount"))["s"]
    return total or ZERO


def overdue_subquery(*, on: date | None = None):
    """An expression for ``.annotate(overdue_amount=...)`` on an Account queryset: one query for any rows."""
    per_account = (overdue_bills(on=on).filter(account=OuterRef("pk")).order_by()
                   .values("account").annotate(s=Sum("unpaid_amount")).values("s"))
    return Coalesce(Subquery(per_account, output_field=MONEY_OUTPUT), Value(ZERO), output_field=MONEY_OUTPUT)


def with_figures(queryset, *, on: date | None = None):
    """Annotate the shown figures of R-MON-3 and the overdue amount; no query per row.

    The sums are rounded to the cent in SQL: SQLite adds decimals in floating point (0.01 showed, sorted
    and filtered as 0.0100000000000002); on PostgreSQL's exact numeric the rounding changes nothing.
    """
    return queryset.annotate(
        overdue_amount=overdue_subquery(on=on),
        cash_balance_value=Round(F("own_cash") + F("transfer_book_balance"), 2, output_field=MONEY_OUTPUT),
        available_credit_value=available_credit_expression(),
    )


# --- Credit control (R-CR-1 to R-CR-5) ---

def credit_contract(enterprise: Enterprise) -> CreditContract | None:
    return CreditContract.objects.filter(enterprise=enterprise).first()


def enterprise_total_credit(enterprise: Enterprise) -> Decimal:
    """The total credit limit in force: 0 until the first contract is confirmed (R-CR-1)."""
    contract = credit_contract(enterprise)
    if contract is None or contract.status != CreditContract.Status.EFFECTIVE:
        return ZERO
    return contract.total_credit_limit


def credit_summary(enterprise: Enterprise, *, on: date | None = None) -> dict:
    """Total, allocated, overdue and maximum quota allocable of an enterprise (R-CR-3)."""
    total = enterprise_total_credit(enterprise)
    allocated = (Account.objects.filter(enterprise=enterprise).aggregate(s=Sum("credit_limit"))["s"]) or ZERO
    overdue = (overdue_bills(on=on).filter(account__enterprise=enterprise)
               .aggregate(s=Sum("unpaid_amount"))["s"]) or ZERO
    return {
        "total_credit_limit": total,
        "allocated": allocated,
        "overdue": overdue,
        "maximum_quota_allocable": total - allocated - overdue,
    }


def maximum_quota_allocable(enterprise: Enterprise, *, on: date | None = None) -> Decimal:
    return credit_summary(enterprise, on=on)["maximum_quota_allocable"]


def lowest_credit_limit(account: Account) -> Decimal:
    """The lowest new limit that keeps available credit strictly above 0 (R-CR-5)."""
    lowest = account.outstanding_balance - account.cash_balance + CENT
    return max(ZERO, lowest)


def highest_credit_limit(account: Account, maximum_allocable: Decimal) -> Decimal:
    """The highest new limit an increase allows (R-CR-4)."""
    return account.credit_limit + max(ZERO, maximum_allocable)


def credit_limit_range(account: Account, *, on: date | None = None) -> dict:
    maximum_allocable = maximum_quota_allocable(account.enterprise, on=on)
    return {
        "maximum_quota_allocable": maximum_allocable,
        "current_credit_limit": account.credit_limit,
        "available_credit": account.available_credit,
        "lowest_credit_limit": lowest_credit_limit(account),
        "highest_credit_limit": highest_credit_limit(account, maximum_allocable),
    }


# --- Transfer and withdrawal (R-TR-2, R-TR-4) ---

def transferable_amount(account: Account) -> Decimal:
    """min(cash balance - transfer book balance, available credit), floored at 0 (R-TR-2)."""
    return max(ZERO, min(account.own_cash, account.available_credit))


def transfer_pair(source: Account, target: Account) -> TransferPair | None:
    return TransferPair.objects.filter(source=source, target=target).first()


def withdrawable_amount(*, source: Account, target: Account, pair: TransferPair | None = None) -> Decimal:
    """min(B's transfer book balance, remaining revocable A -> B, B's available credit), floored at 0 (R-TR-4)."""
    if pair is None:
        pair = transfer_pair(source, target)
    if pair is None:
        return ZERO
    return _withdrawable(target, pair.remaining_revocable)


def _withdrawable(target: Account, remaining_revocable: Decimal) -> Decimal:
    return max(ZERO, min(target.transfer_book_balance, remaining_revocable, target.available_credit))


def withdrawal_sources(target: Account, *, including_withdrawn: bool = False):
    """The accounts that transferred to ``target`` and may withdraw: a pair with something revocable.

    ``including_withdrawn`` also keeps those whose transfers to ``target`` were all withdrawn already (a
    withdrawable amount of 0.00): the withdrawal that emptied a pair, sent again with its idempotency key, must
    reach the service to get its first result (R-TR-7), which refuses a new one with its withdrawable amount.

    Each carries ``remaining_revocable_to_target``, its pair's remaining revocable amount, so that
    ``withdrawable_amounts`` needs no query per source.
    """
    pairs = Q(pairs_as_source__target=target)
    if not including_withdrawn:
        pairs &= Q(pairs_as_source__remaining_revocable__gt=0)
    return Account.objects.filter(pairs).annotate(
        remaining_revocable_to_target=F("pairs_as_source__remaining_revocable")).order_by("name")


def withdrawable_amounts(sources, target: Account) -> list[tuple[Account, Decimal]]:
    """Each of ``withdrawal_sources(target)`` with the amount it may withdraw from ``target`` (R-TR-4), in one query."""
    return [(source, _withdrawable(target, source.remaining_revocable_to_target)) for source in sources]


def withdrawal_targets(source: Account):
    """The accounts ``source`` transferred to and could withdraw from."""
    return Account.objects.filter(pairs_as_target__source=source,
                                  pairs_as_target__remaining_revocable__gt=0).order_by("name")


def _records_between(qs, *, kind: str | None = None, date_from: date | None = None, date_to: date | None = None):
    """Filter records by type and by the local date of ``created_at`` (both ends included), newest first."""
    if kind:
        qs = qs.filter(kind=kind)
    if date_from:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(created_at__date__lte=date_to)
    return qs.order_by("-created_at", "-id")


def transfer_records(account: Account, *, kind: str | None = None, date_from: date | None = None,
                     date_to: date | None = None):
    """Every transfer and withdrawal in and out of ``account``, newest first (R-TR-6)."""
    qs = TransferRecord.objects.filter(Q(payer=account) | Q(payee=account)).select_related("payer", "payee", "actor")
    return _records_between(qs, kind=kind, date_from=date_from, date_to=date_to)


def enterprise_transfer_records(enterprise: Enterprise, *, kind: str | None = None,
                                date_from: date | None = None, date_to: date | None = None):
    qs = TransferRecord.objects.filter(payer__enterprise=enterprise).select_related("payer", "payee", "actor")
    return _records_between(qs, kind=kind, date_from=date_from, date_to=date_to)


def credit_change_records(enterprise: Enterprise, *, account: Account | None = None,
                          date_from: date | None = None, date_to: date | None = None):
    """Credit change records of an enterprise, filterable by account and date (R-CR-7)."""
    qs = CreditChangeRecord.objects.filter(enterprise=enterprise).select_related("account", "actor")
    if account is not None:
        qs = qs.filter(account=account)
    return _records_between(qs, date_from=date_from, date_to=date_to)


# --- The directory (R-ORG-3) ---

def folder_subtree(folder: Folder):
    return Folder.objects.filter(enterprise_id=folder.enterprise_id, path__startswith=folder.path)


def accounts_in_subtree(folder: Folder):
    return Account.objects.filter(enterprise_id=folder.enterprise_id, folder__path__startswith=folder.path)


def root_folder(enterprise: Enterprise) -> Folder:
    return Folder.objects.get(enterprise=enterprise, parent__isnull=True)


# --- Who sees what (R-ORG-6) ---

def visible_accounts(user):
    """The accounts a console user may see: the enterprise's for its administrator, its own otherwise."""
    if not user.is_authenticated or user.account_id is None:
        return Account.objects.none()
    if user.is_enterprise_admin:
        return Account.objects.filter(enterprise_id=user.account.enterprise_id)
    return Account.objects.filter(pk=user.account_id)


def is_overdue(account: Account, *, on: date | None = None) -> bool:
    return overdue_bills(on=on).filter(account=account).exists()


def accounts_with_pairs_exists(account: Account):
    return Exists(TransferPair.objects.filter(Q(source=OuterRef("pk")) | Q(target=OuterRef("pk"))))


def folder_account_counts(enterprise: Enterprise) -> dict[int, int]:
    rows = Account.objects.filter(enterprise=enterprise).values("folder").annotate(n=Count("pk"))
    return {r["folder"]: r["n"] for r in rows}


# --- Previews of a transfer or a withdrawal (R-TR-2 to R-TR-5, R-TR-8) ---

def _shown_figures(account: Account) -> dict:
    """The figures the confirmation step shows for one account (R-MON-2, R-MON-3)."""
    return {
        "own_cash": account.own_cash,
        "transfer_book_balance": account.transfer_book_balance,
        "cash_balance": account.cash_balance,
        "available_credit": account.available_credit,
    }


def _before_after(account: Account, **changes) -> dict:
    after = Account(own_cash=account.own_cash, transfer_book_balance=account.transfer_book_balance,
                    credit_limit=account.credit_limit, outstanding_balance=account.outstanding_balance)
    for field, delta in changes.items():
        setattr(after, field, getattr(after, field) + delta)
    return {"account": account, "before": _shown_figures(account), "after": _shown_figures(after)}


def transfer_preview(payer: Account, payee: Account, amount: Decimal) -> dict:
    """Both accounts' figures before and after a transfer of ``amount`` from ``payer`` to ``payee`` (R-TR-3).

    Read only: nothing moves. Raises ``DomainError`` with the service's own message when
    ``services.transfer_create`` would refuse it now (R-TR-1, R-TR-2); the service checks again
    inside its transaction on locked rows and refuses with the current figure if it changed (R-TR-8).
    """
    from .services.common import check_fund_account  # the services import this module

    if payer.pk == payee.pk:
        raise DomainError(messages.MSG_SAME_ACCOUNT, field="payer", rule="R-TR-1")
    for account in (payer, payee):
        check_fund_account(account, payee.enterprise_id)
    overdue = overdue_amount(payer)
    if overdue > 0:
        raise DomainError(messages.MSG_PAYER_OVERDUE.format(account=payer.account_id,
                                                                     overdue=format_money(overdue)),
                                   field="payer", rule="R-TR-2")
    limit = transferable_amount(payer)
    if amount > limit:
        raise DomainError(messages.MSG_OVER_TRANSFERABLE.format(limit=format_money(limit),
                                                                         amount=format_money(amount)),
                                   field="amount", rule="R-TR-2", code="over_transferable")
    return {
        "amount": amount,
        "limit": limit,
        "payer": _before_after(payer, own_cash=-amount),
        "payee": _before_after(payee, transfer_book_balance=amount),
    }


def withdrawal_preview(source: Account, target: Account, amount: Decimal) -> dict:
    """Both accounts' figures before and after withdrawing ``amount`` from ``target`` back to ``source`` (R-TR-5).

    Read only, like ``transfer_preview``; refuses as ``services.withdrawal_create`` would now (R-TR-4).
    """
    from .services.common import check_fund_account

    if source.pk == target.pk:
        raise DomainError(messages.MSG_SAME_ACCOUNT, field="source", rule="R-TR-1")
    for account in (source, target):
        check_fund_account(account, target.enterprise_id)
    pair = transfer_pair(source, target)
    if pair is None:
        raise DomainError(messages.MSG_NO_TRANSFER.format(source=source.account_id,
                                                                   target=target.account_id),
                                   field="source", rule="R-TR-4")
    limit = withdrawable_amount(source=source, target=target, pair=pair)
    if amount > limit:
        raise DomainError(messages.MSG_OVER_WITHDRAWABLE.format(limit=format_money(limit),
                                                                         amount=format_money(amount)),
                                   field="amount", rule="R-TR-4", code="over_withdrawable")
    return {
        "amount": amount,
        "limit": limit,
        "source": _before_after(source, own_cash=amount),
        "target": _before_after(target, transfer_book_balance=-amount),
    }

# --- The unified account management table (R-UAM-1, R-UAM-2) ---

# URL sort key -> the column it orders by. Every money column sorts both ways ("-" prefix: descending).
ACCOUNT_TABLE_SORTS = {
    "name": "name",
    "account_id": "account_id",
    "folder": "folder__name",
    "available_credit": "available_credit_value",
    "cash_balance": "cash_balance_value",
    "transfer_book_balance": "transfer_book_balance",
    "credit_limit": "credit_limit",
    "outstanding": "outstanding_balance",
    "overdue": "overdue_amount",
    "coupons": "coupons",
    "alert_threshold": "alert_threshold",
}
ACCOUNT_TABLE_ALERT_FILTERS = ("on", "off", "below")


def account_table_filter(*, search: str = "", folder: Folder | None = None, alert: str = "") -> Q:
    """The rows the table's search and filters keep (R-UAM-2), as one condition on Account.

    ``search`` matches the name (case-insensitive) or the account id; ``folder`` keeps its subtree;
    ``alert`` is ``on``, ``off`` or ``below`` (enabled and available credit under the threshold).
    The table's query and its row count (``console.summary``) both use it, so they cannot disagree.
    """
    condition = Q()
    search = (search or "").strip()
    if search:
        condition &= Q(name__icontains=search) | Q(account_id__contains=search)
    if folder is not None:
        condition &= Q(enterprise_id=folder.enterprise_id, folder__path__startswith=folder.path)
    if alert == "on":
        condition &= Q(alert_enabled=True)
    elif alert == "off":
        condition &= Q(alert_enabled=False)
    elif alert == "below":
        condition &= Q(alert_enabled=True, alert_threshold__gt=available_credit_expression())
    return condition


def account_table(enterprise: Enterprise | None, *, search: str = "", folder: Folder | None = None,
                  alert: str = "", sort: str = "name", on: date | None = None):
    """The rows of the account table of ``enterprise`` (R-UAM-1), searched, filtered and sorted (R-UAM-2).

    Every figure comes from stored balances and annotations (R-MON-3): one query for any number of rows.
    The search and filters are ``account_table_filter``'s;
    ``sort`` is a key of ``ACCOUNT_TABLE_SORTS``, ``-`` for descending, ties broken by pk.
    """
    from sharing.selectors import annotate_coupons  # sharing reads accounts; import late to avoid a cycle

    qs = (Account.objects.filter(enterprise=enterprise)
          .filter(account_table_filter(search=search, folder=folder, alert=alert)).select_related("folder"))
    qs = annotate_coupons(with_figures(qs, on=on))
    descending = (sort or "").startswith("-")
    column = ACCOUNT_TABLE_SORTS.get((sort or "").lstrip("-"), "name")
    return qs.order_by(f"-{column}" if descending else column, "-pk" if descending else "pk")


def credit_blockers_for_page(enterprise: Enterprise, accounts) -> dict[int, dict[str, str | None]]:
    """Why the credit limit and the transfer actions are unavailable, per account of a table page.

    The same reasons as ``services.credit_blocker`` (R-CR-1, R-CR-6, R-ORG-5), computed from the row
    fields and ONE query for the enterprise's contract (none if it was loaded with the enterprise,
    ``select_related("enterprise__credit_contract")``), so a page of any size costs one query at most.
    Returns ``{pk: {"credit": reason or None, "transfer": reason or None}}``.
    """
    if enterprise is None:
        contract = None
    elif Enterprise.credit_contract.is_cached(enterprise):  # loaded with the enterprise: no query
        contract = getattr(enterprise, "credit_contract", None)
    else:
        contract = credit_contract(enterprise)
    if contract is None:
        contract_reason = messages.MSG_NO_CONTRACT
    elif contract.status != CreditContract.Status.EFFECTIVE:
        contract_reason = messages.MSG_CONTRACT_PENDING
    else:
        contract_reason = None
    company_id = enterprise.company_id if enterprise is not None else None
    reasons = {}
    for account in accounts:
        if enterprise is None or account.enterprise_id != enterprise.pk:
            fund = messages.MSG_NOT_IN_ENTERPRISE.format(account=account.account_id)
        elif not account.verified_company_id or account.verified_company_id != company_id:
            fund = messages.MSG_OTHER_COMPANY.format(account=account.account_id)
        elif account.credit_transfer_disabled:
            reason = ("pay on behalf of an ecosystem partner" if account.pay_on_behalf
                      else "significant receivables with long-overdue history")
            fund = messages.MSG_DISABLED.format(account=account.account_id, reason=reason)
        else:
            fund = None
        reasons[account.pk] = {"credit": contract_reason or fund, "transfer": fund}
    return reasons
