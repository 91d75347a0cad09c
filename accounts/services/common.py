"""What every accounts service shares: the role checks (R-ORG-6), row locks in one fixed order (R-TR-7), posting
to the ledger (R-MON-4) and the fund-account check (R-TR-1, R-ORG-5, R-CR-6).

Locks are taken in one fixed order: enterprise, then accounts by primary key, then bills by age.
"""

from decimal import Decimal

from core.audit import audit_event
from core.errors import DomainError, PermissionDenied
from core.money import format_money

from .. import messages as msg
from ..models import Account, Enterprise, LedgerEntry, Operation, User

M = format_money


def require_enterprise_admin(actor, enterprise_id=None) -> int:
    """The actor is an enterprise administrator (of ``enterprise_id`` when given); returns its enterprise id."""
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_enterprise_admin:
        raise PermissionDenied(msg.MSG_NOT_ADMIN)
    own = actor.account.enterprise_id
    if enterprise_id is not None and own != enterprise_id:
        raise PermissionDenied(msg.MSG_NOT_ADMIN)
    return own


def require_account_manager(actor) -> None:
    """Back office operations: account managers (staff), or the system (``actor=None``)."""
    if actor is not None and not getattr(actor, "is_staff", False):
        raise PermissionDenied(msg.MSG_NOT_ACCOUNT_MANAGER)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

def lock_accounts(*pks) -> dict[int, Account]:
    """Lock the accounts' rows in primary key order (R-TR-7) and return them fresh.

    ``FOR NO KEY UPDATE``: it serializes services on the account as ``FOR UPDATE`` does, but does not
    block the ``FOR KEY SHARE`` lock PostgreSQL takes on a row when another transaction inserts a row
    that references it (a ledger entry, an audit event); with ``FOR UPDATE`` those inserts waited on
    the lock holder, and waits in opposite directions became deadlocks.
    """
    pks = sorted({pk.pk if isinstance(pk, Account) else int(pk) for pk in pks})
    rows = (Account.objects.select_for_update(of=("self",), no_key=True).select_related("enterprise")
            .filter(pk__in=pks).order_by("pk"))
    found = {a.pk: a for a in rows}
    missing = [pk for pk in pks if pk not in found]
    if missing:
        raise DomainError(f"Account {missing[0]} does not exist.")
    return found


def lock_enterprise(enterprise_id) -> Enterprise:
    """Lock the enterprise row (``FOR NO KEY UPDATE``, see ``lock_accounts``).

    Every money service inserts an audit event referencing the enterprise, which takes ``FOR KEY SHARE``
    on this row. A ``FOR UPDATE`` lock here (credit limit set) made a transfer holding account locks wait
    for it while the credit limit change waited for those accounts: a deadlock.
    """
    return Enterprise.objects.select_for_update(no_key=True).get(pk=enterprise_id)


def lock_directory(enterprise_id) -> Enterprise:
    """Serialize, per enterprise, changes of directory membership with the resolution of folder scopes.

    Moving, admitting or removing an account and sharing an asset with folders both take this lock first
    (before accounts and assets), so a share never misses an account that moved into its folder meanwhile,
    nor keeps one that moved out (R-SH-2).
    """
    return lock_enterprise(enterprise_id)


def post_changes(operation: Operation, changes: list[tuple[Account, str, Decimal]], *, at) -> None:
    """Apply signed changes to locked accounts' buckets and write their ledger rows (R-MON-4)."""
    entries = []
    touched: dict[int, tuple[Account, set]] = {}
    for account, bucket, delta in changes:
        if delta == 0:
            continue
        field = LedgerEntry.apply_to(account, bucket, delta)
        entries.append(LedgerEntry(operation=operation, account=account, bucket=bucket, amount=delta, created_at=at))
        touched.setdefault(account.pk, (account, set()))[1].add(field)
    LedgerEntry.objects.bulk_create(entries)
    for account, fields in touched.values():
        account.save(update_fields=sorted(fields))


def check_fund_account(account: Account, enterprise_id: int) -> None:
    """R-TR-1 / R-ORG-5 / R-CR-6: the account may take part in fund operations of this enterprise."""
    if account.enterprise_id != enterprise_id:
        raise DomainError(msg.MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), rule="R-TR-1")
    if not account.verified_company_id or account.verified_company_id != account.enterprise.company_id:
        raise DomainError(msg.MSG_OTHER_COMPANY.format(account=account.account_id), rule="R-ORG-5")
    if account.credit_transfer_disabled:
        reason = "pay on behalf of an ecosystem partner" if account.pay_on_behalf else \
            "significant receivables with long-overdue history"
        raise DomainError(msg.MSG_DISABLED.format(account=account.account_id, reason=reason), rule="R-CR-6")


def clean_remark(remark) -> str:
    remark = (remark or "").strip()
    if not remark:
        raise DomainError(msg.MSG_REMARK_REQUIRED, field="remark", rule="R-TR-1")
    if len(remark) > 200:
        raise DomainError(msg.MSG_REMARK_TOO_LONG.format(length=len(remark)), field="remark", rule="R-TR-1")
    return remark



def audit_money(actor, action, account: Account, before: dict, after: dict, *, obj, at):
    audit_event(actor=actor, action=action, obj=obj, enterprise=account.enterprise, before=before,
                after=after, at=at)


def balance_figures(account: Account) -> dict:
    return {
        "own_cash": account.own_cash,
        "transfer_book_balance": account.transfer_book_balance,
        "credit_limit": account.credit_limit,
        "outstanding_balance": account.outstanding_balance,
    }



def user_or_none(actor):
    return actor if isinstance(actor, User) else None


def account_pk(value) -> int:
    if isinstance(value, Account):
        return value.pk
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DomainError("Choose an account.")
