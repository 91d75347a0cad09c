"""Writes: every change of state of SPEC sections 1 to 5, one transaction each.

Each service takes keyword-only arguments, checks its rules inside its transaction on locked rows, and either
changes everything it must (balances, ledger, records, audit, alerts, outbox) or raises ``DomainError`` and
changes nothing. The modules split them by concern; this package names the public ones, so callers write
``services.transfer_create(...)``.
"""

from .alerts import alert_set, alert_set_many, evaluate_alerts, send_alert_reminders
from .backoffice import ACCOUNT_DETAIL_FIELDS, account_details_set, account_flags_set
from .balances import charge, top_up
from .common import (account_pk, lock_accounts, lock_directory, lock_enterprise, require_account_manager,
                     require_enterprise_admin)
from .credit import credit_blocker, credit_contract_confirm, credit_contract_grant, credit_limit_set
from .directory import (account_remove, accounts_move, enterprise_enable, expire_invitations, folder_create,
                        folder_delete, folder_rename, invitation_create, invitation_respond)
from .transfers import transfer_create, withdrawal_create

__all__ = [
    "ACCOUNT_DETAIL_FIELDS", "account_details_set", "account_flags_set", "account_pk", "account_remove",
    "accounts_move", "alert_set", "alert_set_many", "charge", "credit_blocker", "credit_contract_confirm",
    "credit_contract_grant", "credit_limit_set", "enterprise_enable", "evaluate_alerts", "expire_invitations",
    "folder_create", "folder_delete", "folder_rename", "invitation_create", "invitation_respond", "lock_accounts",
    "lock_directory", "lock_enterprise", "require_account_manager", "require_enterprise_admin",
    "send_alert_reminders", "top_up", "transfer_create", "withdrawal_create",
]
