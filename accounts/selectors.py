"""Reads: the figures of SPEC sections 2 to 6, computed from stored balances and bills."""

from datetime import date
from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Round
from django.utils import timezone

from core.money import CENT, ZERO

from .models import Account, Bill, CreditChangeRecord, CreditContract, Enterprise, Folder, TransferPair, TransferRecord

MONEY_OUTPUT = DecimalField(max_digits=20, decimal_places=2)


def today() -> date:
    return timezone.localdate()


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
        available_credit_value=Round(F("own_cash") + F("transfer_book_balance") + F("credit_limit")
                                     - F("outstanding_balance"), 2, output_field=MONEY_OUTPUT),
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
    return max(ZERO, min(target.transfer_book_balance, pair.remaining_revocable, target.available_credit))


def withdrawal_sources(target: Account):
    """The accounts that transferred to ``target`` and may withdraw: a pair with something revocable."""
    return Account.objects.filter(pairs_as_source__target=target,
                                  pairs_as_source__remaining_revocable__gt=0).order_by("name")


def withdrawal_targets(source: Account):
    """The accounts ``source`` transferred to and could withdraw from."""
    return Account.objects.filter(pairs_as_target__source=source,
                                  pairs_as_target__remaining_revocable__gt=0).order_by("name")


def transfer_records(account: Account, *, kind: str | None = None, date_from: date | None = None,
                     date_to: date | None = None):
    """Every transfer and withdrawal in and out of ``account``, newest first (R-TR-6)."""
    qs = TransferRecord.objects.filter(Q(payer=account) | Q(payee=account)).select_related("payer", "payee", "actor")
    if kind:
        qs = qs.filter(kind=kind)
    if date_from:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(created_at__date__lte=date_to)
    return qs.order_by("-created_at", "-id")


def enterprise_transfer_records(enterprise: Enterprise, *, kind: str | None = None,
                                date_from: date | None = None, date_to: date | None = None):
    qs = TransferRecord.objects.filter(payer__enterprise=enterprise).select_related("payer", "payee", "actor")
    if kind:
        qs = qs.filter(kind=kind)
    if date_from:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(created_at__date__lte=date_to)
    return qs.order_by("-created_at", "-id")


def credit_change_records(enterprise: Enterprise, *, account: Account | None = None,
                          date_from: date | None = None, date_to: date | None = None):
    """Credit change records of an enterprise, filterable by account and date (R-CR-7)."""
    qs = CreditChangeRecord.objects.filter(enterprise=enterprise).select_related("account", "actor")
    if account is not None:
        qs = qs.filter(account=account)
    if date_from:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(created_at__date__lte=date_to)
    return qs.order_by("-created_at", "-id")


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
