"""Credit control (R-CR-1 to R-CR-7): the enterprise's contract and each account's credit limit."""

from django.utils import timezone

from core.audit import audit_event
from core.db import atomic_service
from core.errors import DomainError
from core.idempotency import idempotent
from core.money import ZERO, parse_amount
from core.notifications import notify_account

from .. import messages as msg
from .. import selectors
from ..models import Account, CreditChangeRecord, CreditContract, Enterprise, Operation
from .alerts import evaluate_alerts
from .common import (M, account_pk, check_fund_account, lock_accounts, lock_enterprise, post_changes,
                     require_account_manager, require_enterprise_admin, user_or_none)

def _next_contract_number(enterprise: Enterprise, at) -> str:
    return f"CC{at:%Y%m%d}{enterprise.pk:06d}"


@atomic_service
def credit_contract_grant(*, actor, enterprise: Enterprise, total_credit_limit, reason: str = "") -> CreditContract:
    """The account manager grants or changes the enterprise's total credit limit (R-CR-1, R-CR-2).

    The first contract is pending until the management account confirms it; while pending, a new grant
    changes its amount. Once effective, a change takes effect at once and notifies the management
    account's contacts by SMS and email.
    """
    require_account_manager(actor)
    total = parse_amount(total_credit_limit, field="total_credit_limit", allow_zero=True)
    at = timezone.now()
    enterprise = lock_enterprise(enterprise.pk)
    contract = CreditContract.objects.select_for_update().filter(enterprise=enterprise).first()
    management = Account.objects.filter(enterprise=enterprise, is_management=True).first()
    if contract is None:
        contract = CreditContract.objects.create(
            enterprise=enterprise, contract_number=_next_contract_number(enterprise, at), total_credit_limit=total,
            created_by=user_or_none(actor), created_at=at, updated_at=at)
        audit_event(actor=actor, action="credit_contract_grant", obj=contract, enterprise=enterprise,
                    after={"total_credit_limit": total, "status": contract.status}, at=at)
        if management is not None:
            notify_account(management, kind="credit_contract_pending", console=True, at=at, email=False,
                           subject="Credit control contract to confirm",
                           body=(f"A credit control contract of {M(total, currency=True)} awaits your confirmation "
                                 f"on the Contracts page."))
        return contract
    old = contract.total_credit_limit
    if old == total:
        raise DomainError(f"The total credit limit is already {M(total)}.", field="total_credit_limit")
    contract.total_credit_limit = total
    contract.updated_at = at
    contract.save(update_fields=["total_credit_limit", "updated_at"])
    audit_event(actor=actor, action="credit_contract_change", obj=contract, enterprise=enterprise,
                before={"total_credit_limit": old}, after={"total_credit_limit": total}, at=at)
    if contract.status == CreditContract.Status.EFFECTIVE:
        CreditChangeRecord.objects.create(enterprise=enterprise, account=None, old_value=old, new_value=total,
                                          reason=reason[:200] or "Total credit limit changed",
                                          actor=user_or_none(actor), created_at=at)
        if management is not None:
            notify_account(management, kind="credit_total_changed", console=True, at=at,
                           subject="Total credit limit changed",
                           body=f"The enterprise's total credit limit changed from {M(old)} to {M(total)}.")
    return contract


@atomic_service
def credit_contract_confirm(*, actor, contract: CreditContract) -> CreditContract:
    """The management account confirms the first contract; it takes effect at once (R-CR-1)."""
    contract = CreditContract.objects.select_for_update().select_related("enterprise").get(pk=contract.pk)
    require_enterprise_admin(actor, contract.enterprise_id)
    if contract.status != CreditContract.Status.PENDING:
        raise DomainError(msg.MSG_CONTRACT_NOT_PENDING)
    at = timezone.now()
    contract.status = CreditContract.Status.EFFECTIVE
    contract.confirmed_at = at
    contract.confirmed_by = actor
    contract.updated_at = at
    contract.save(update_fields=["status", "confirmed_at", "confirmed_by", "updated_at"])
    CreditChangeRecord.objects.create(enterprise=contract.enterprise, account=None, old_value=ZERO,
                                      new_value=contract.total_credit_limit, reason="Credit control contract confirmed",
                                      actor=actor, created_at=at)
    audit_event(actor=actor, action="credit_contract_confirm", obj=contract, enterprise=contract.enterprise,
                before={"status": "pending"}, after={"status": "effective"}, at=at)
    notify_account(actor.account, kind="credit_contract_confirmed", email=False, at=at,
                   subject="Credit control contract effective",
                   body=(f"Your credit control contract {contract.contract_number} of "
                         f"{M(contract.total_credit_limit, currency=True)} is now effective."))
    return contract


def credit_blocker(account: Account) -> DomainError | None:
    """Why the credit limit of ``account`` cannot be set at all now, or ``None`` (R-CR-1, R-CR-6, R-ORG-5)."""
    contract = selectors.credit_contract(account.enterprise) if account.enterprise_id else None
    if contract is None:
        return DomainError(msg.MSG_NO_CONTRACT, rule="R-CR-1", code="no_contract")
    if contract.status != CreditContract.Status.EFFECTIVE:
        return DomainError(msg.MSG_CONTRACT_PENDING, rule="R-CR-1", code="contract_pending")
    try:
        check_fund_account(account, account.enterprise_id)
    except DomainError as exc:
        return exc
    return None


@idempotent("credit_limit", CreditChangeRecord)
def credit_limit_set(*, actor, account, new_limit, reason: str = "") -> CreditChangeRecord:
    """Set an account's credit limit within the enterprise's maximum quota allocable (R-CR-3 to R-CR-7)."""
    pk = account_pk(account)
    new_limit = parse_amount(new_limit, field="new_limit", allow_zero=True)
    at = timezone.now()
    enterprise_id = require_enterprise_admin(actor)
    lock_enterprise(enterprise_id)  # serializes allocations against the enterprise total (R-CR-3)
    account = lock_accounts(pk)[pk]
    if account.enterprise_id != enterprise_id:
        raise DomainError(msg.MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), rule="R-CR-3")
    blocker = credit_blocker(account)
    if blocker is not None:
        raise blocker
    current = account.credit_limit
    if new_limit == current:
        raise DomainError(msg.MSG_LIMIT_UNCHANGED.format(current=M(current)), field="new_limit")
    if new_limit > current:
        allocable = selectors.maximum_quota_allocable(account.enterprise)
        if new_limit - current > allocable:
            raise DomainError(
                msg.MSG_OVER_ALLOCABLE.format(allocable=M(allocable), amount=M(new_limit),
                                          highest=M(selectors.highest_credit_limit(account, allocable))),
                field="new_limit", rule="R-CR-4", code="over_allocable")
    elif account.cash_balance + new_limit - account.outstanding_balance <= 0:
        raise DomainError(
            msg.MSG_DECREASE_TOO_LOW.format(lowest=M(selectors.lowest_credit_limit(account)), amount=M(new_limit),
                                        cash=M(account.cash_balance), outstanding=M(account.outstanding_balance)),
            field="new_limit", rule="R-CR-5", code="decrease_too_low")
    operation = Operation.objects.create(kind=Operation.Kind.CREDIT_LIMIT, actor=actor,
                                         description=(reason or "Credit limit changed")[:200], created_at=at)
    post_changes(operation, [(account, "credit_limit", new_limit - current)], at=at)
    record = CreditChangeRecord.objects.create(enterprise=account.enterprise, account=account, old_value=current,
                                               new_value=new_limit, reason=(reason or "")[:200], actor=actor,
                                               operation=operation, created_at=at)
    audit_event(actor=actor, action="credit_limit_set", obj=account, enterprise=account.enterprise,
                before={"credit_limit": current}, after={"credit_limit": new_limit}, at=at)
    notify_account(account, kind="credit_limit_changed", email=False, at=at,
                   subject="Credit limit changed",
                   body=f"The credit limit of account {account.account_id} changed from {M(current)} to {M(new_limit)}.")
    evaluate_alerts([account], at=at)
    return record
