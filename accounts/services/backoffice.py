"""The account manager's changes to an account (R-CR-6, R-ORG-1, R-AU-1): flags, company, name and contacts."""

from django.utils import timezone

from core.audit import audit_event
from core.db import atomic_service
from core.errors import DomainError

from ..models import Account
from ..signals import company_changed
from .common import account_pk, lock_accounts, require_account_manager

@atomic_service
def account_flags_set(*, actor, account: Account, pay_on_behalf: bool | None = None, risk_flag: bool | None = None,
                      verified_company_id: str | None = None) -> Account:
    require_account_manager(actor)
    account = lock_accounts(account)[account.pk]
    before = {"pay_on_behalf": account.pay_on_behalf, "risk_flag": account.risk_flag,
              "verified_company_id": account.verified_company_id}
    if pay_on_behalf is not None:
        account.pay_on_behalf = pay_on_behalf
    if risk_flag is not None:
        account.risk_flag = risk_flag
    if verified_company_id is not None:
        account.verified_company_id = verified_company_id.strip()
    account.save(update_fields=["pay_on_behalf", "risk_flag", "verified_company_id"])
    if account.verified_company_id != before["verified_company_id"]:
        company_changed.send(sender=Account, account=account, old_company_id=before["verified_company_id"],
                             at=timezone.now())
    audit_event(actor=actor, action="account_flags_set", obj=account, enterprise=account.enterprise, before=before,
                after={"pay_on_behalf": account.pay_on_behalf, "risk_flag": account.risk_flag,
                       "verified_company_id": account.verified_company_id})
    return account


ACCOUNT_DETAIL_FIELDS = ("name", "contact_phone", "contact_email")


@atomic_service
def account_details_set(*, actor, account: Account, **details) -> Account:
    """The back office changes an account's name or contacts (never its balances), audited (R-AU-1)."""
    require_account_manager(actor)
    unknown = set(details) - set(ACCOUNT_DETAIL_FIELDS)
    if unknown:
        raise DomainError(f"These account fields cannot be changed here: {', '.join(sorted(unknown))}.")
    account = lock_accounts(account)[account_pk(account)]
    before = {f: getattr(account, f) for f in details}
    for field, value in details.items():
        setattr(account, field, (value or "").strip())
    if not account.name:
        raise DomainError("Enter the account's name.", field="name")
    account.save(update_fields=sorted(details))
    audit_event(actor=actor, action="account_details_set", obj=account, enterprise=account.enterprise,
                before=before, after={f: getattr(account, f) for f in details})
    return account
