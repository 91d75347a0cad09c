"""Helpers to prove that a refused operation changed nothing, and to read an account's figures.

``books()`` is a snapshot of everything a service may write; a refusal must leave it equal.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import (
    Account,
    AlertEvent,
    Bill,
    Charge,
    CreditChangeRecord,
    CreditContract,
    Folder,
    Invitation,
    LedgerEntry,
    Operation,
    TopUp,
    TransferPair,
    TransferRecord,
)
from core.errors import DomainError
from core.models import AuditEvent, IdempotencyKey, Message, Notification

D = Decimal


def books() -> dict:
    """Every balance, record and side effect a service can write."""
    return {
        "accounts": list(Account.objects.order_by("pk").values_list(
            "pk", "own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance", "enterprise_id",
            "folder_id", "pay_on_behalf", "risk_flag", "alert_enabled", "alert_threshold", "alert_sent_at",
            "alert_reminders_sent", "alert_last_reminder_on")),
        "ledger": LedgerEntry.objects.count(),
        "operations": Operation.objects.count(),
        "bills": list(Bill.objects.order_by("pk").values_list("pk", "unpaid_amount", "paid_at")),
        "charges": Charge.objects.count(),
        "top_ups": TopUp.objects.count(),
        "transfer_records": TransferRecord.objects.count(),
        "pairs": list(TransferPair.objects.order_by("pk").values_list("pk", "remaining_revocable",
                                                                     "total_transferred")),
        "contracts": list(CreditContract.objects.order_by("pk").values_list("pk", "status", "total_credit_limit")),
        "credit_changes": CreditChangeRecord.objects.count(),
        "alert_events": AlertEvent.objects.count(),
        "folders": list(Folder.objects.order_by("pk").values_list("pk", "name", "parent_id", "path")),
        "invitations": list(Invitation.objects.order_by("pk").values_list("pk", "status")),
        "audit_events": AuditEvent.objects.count(),
        "notifications": Notification.objects.count(),
        "messages": Message.objects.count(),
        "idempotency_keys": IdempotencyKey.objects.count(),
    }


def assert_refused(call, message: str, *, rule: str | None = None) -> DomainError:
    """``call()`` raises ``DomainError`` with exactly ``message`` and changes nothing at all."""
    before = books()
    with pytest.raises(DomainError) as info:
        call()
    assert info.value.message == message, f"refused with: {info.value.message}"
    if rule is not None:
        assert info.value.rule == rule
    assert books() == before
    return info.value


def figures(account: Account) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(own cash, transfer book balance, credit limit, outstanding balance), fresh from the database."""
    account.refresh_from_db()
    return account.own_cash, account.transfer_book_balance, account.credit_limit, account.outstanding_balance


def make_overdue(account: Account, *, days: int = 1) -> None:
    """Move every unpaid bill of ``account`` past its due date."""
    Bill.objects.filter(account=account, unpaid_amount__gt=0).update(
        due_date=timezone.localdate() - timedelta(days=days))


def ledger_rows(operation) -> set[tuple[int, str, Decimal]]:
    return set(LedgerEntry.objects.filter(operation=operation).values_list("account_id", "bucket", "amount"))
