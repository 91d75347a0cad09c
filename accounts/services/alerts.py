"""Low balance alerts (R-AL-1 to R-AL-5): the per-account settings, the alert after a balance change, reminders."""

from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.audit import audit_event
from core.db import atomic_service
from core.errors import DomainError
from core.money import parse_amount
from core.notifications import notify_account

from .. import messages as msg
from .. import selectors
from ..models import Account, AlertEvent
from .common import M, account_pk, lock_accounts, require_enterprise_admin

def evaluate_alerts(accounts, *, at) -> None:
    """After a change of balances, send the low balance alerts that are due (R-AL-3)."""
    for account in accounts:
        if not account.alert_enabled:
            continue
        available = account.available_credit
        if available < account.alert_threshold:
            if account.alert_sent_at is None:
                account.alert_sent_at = at
                account.alert_reminders_sent = 0
                account.alert_last_reminder_on = timezone.localdate(at)
                account.save(update_fields=["alert_sent_at", "alert_reminders_sent", "alert_last_reminder_on"])
                AlertEvent.objects.create(account=account, kind=AlertEvent.Kind.ALERT, available_credit=available,
                                          threshold=account.alert_threshold, created_at=at)
                notify_account(
                    account, kind="low_balance_alert", console=True, at=at,
                    subject=f"Low balance alert for {account.name}",
                    body=(f"The available credit of account {account.account_id} is {M(available, currency=True)}, "
                          f"below your alert threshold of {M(account.alert_threshold, currency=True)}."),
                )
        elif account.alert_sent_at is not None:
            account.alert_sent_at = None
            account.alert_reminders_sent = 0
            account.save(update_fields=["alert_sent_at", "alert_reminders_sent"])



def _parse_threshold(threshold) -> Decimal:
    return parse_amount(threshold, field="threshold", allow_zero=True)


@atomic_service
def alert_set(*, actor, account, enabled: bool, threshold) -> Account:
    """Set one account's alert switch and threshold; starts afresh (R-AL-1, R-AL-3)."""
    return alert_set_many(actor=actor, accounts=[account], enabled=enabled, threshold=threshold)[0]


@atomic_service
def alert_set_many(*, actor, accounts, enabled: bool, threshold) -> list[Account]:
    """Apply one threshold and switch to every selected account, all or none (R-AL-2)."""
    threshold = _parse_threshold(threshold)
    pks = [account_pk(a) for a in accounts]
    if not pks:
        raise DomainError(msg.MSG_NO_ACCOUNTS, field="accounts", rule="R-AL-2")
    enterprise_id = require_enterprise_admin(actor)
    locked = lock_accounts(*pks)
    at = timezone.now()
    for account in locked.values():
        if account.enterprise_id != enterprise_id:
            raise DomainError(msg.MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), field="accounts")
    for account in locked.values():
        before = {"alert_enabled": account.alert_enabled, "alert_threshold": account.alert_threshold}
        account.alert_enabled = bool(enabled)
        account.alert_threshold = threshold
        account.alert_sent_at = None
        account.alert_reminders_sent = 0
        account.alert_last_reminder_on = None
        account.save(update_fields=["alert_enabled", "alert_threshold", "alert_sent_at", "alert_reminders_sent",
                                    "alert_last_reminder_on"])
        audit_event(actor=actor, action="alert_set", obj=account, enterprise=account.enterprise, before=before,
                    after={"alert_enabled": account.alert_enabled, "alert_threshold": threshold}, at=at)
    return [locked[pk] for pk in pks]


def send_alert_reminders(*, now=None) -> int:
    """Send the daily reminders due now (R-AL-5). Safe to run more than once a day. Returns how many went out."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    candidates = list(Account.objects.filter(
        alert_enabled=True, alert_sent_at__isnull=False,
        alert_reminders_sent__lt=settings.EAC_ALERT_REMINDER_DAYS,
    ).exclude(alert_last_reminder_on__gte=today).values_list("pk", flat=True))
    sent = 0
    for pk in candidates:
        sent += _send_one_reminder(pk, now=now, today=today)
    return sent


@atomic_service
def _send_one_reminder(pk, *, now, today) -> int:
    account = lock_accounts(pk)[pk]
    if (not account.alert_enabled or account.alert_sent_at is None
            or account.alert_reminders_sent >= settings.EAC_ALERT_REMINDER_DAYS
            or (account.alert_last_reminder_on is not None and account.alert_last_reminder_on >= today)):
        return 0
    available = account.available_credit
    if available >= account.alert_threshold:
        return 0  # back at or above the threshold: the next balance change ends the episode (R-AL-3)
    if selectors.is_overdue(account, on=today):
        # Reminders stop for good once the account is overdue, even if a later payment clears the overdue
        # amount while it stays below the threshold; a new episode starts only after it recovers (R-AL-5).
        account.alert_reminders_sent = settings.EAC_ALERT_REMINDER_DAYS
        account.save(update_fields=["alert_reminders_sent"])
        return 0
    account.alert_reminders_sent += 1
    account.alert_last_reminder_on = today
    account.save(update_fields=["alert_reminders_sent", "alert_last_reminder_on"])
    AlertEvent.objects.create(account=account, kind=AlertEvent.Kind.REMINDER, available_credit=available,
                              threshold=account.alert_threshold, created_at=now)
    notify_account(account, kind="low_balance_reminder", console=True, at=now,
                   subject=f"Reminder: low balance on {account.name}",
                   body=(f"The available credit of account {account.account_id} is still {M(available, currency=True)}, "
                         f"below your alert threshold of {M(account.alert_threshold, currency=True)}."))
    return 1
