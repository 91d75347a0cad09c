"""Write notifications in the caller's transaction; deliver them after commit (R-NT-1)."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import Message, Notification

log = logging.getLogger("eac.notifications")


def _enqueue(ids: list[int]) -> None:
    from .tasks import deliver_notification

    for pk in ids:
        try:
            deliver_notification.enqueue(pk)
        except Exception:  # the outbox row stays pending; retry_notifications picks it up
            log.exception("could not enqueue notification %s", pk)


def notify_account(account, *, kind: str, subject: str, body: str, sms: bool = True, email: bool = True,
                   console: bool = False, at=None) -> list[Notification]:
    """Queue SMS and email to the account's contacts, and optionally an in-console message."""
    at = at or timezone.now()
    rows = []
    if sms and account.contact_phone:
        rows.append(Notification(account=account, channel=Notification.Channel.SMS, recipient=account.contact_phone,
                                 subject=subject, body=body, kind=kind, created_at=at))
    if email and account.contact_email:
        rows.append(Notification(account=account, channel=Notification.Channel.EMAIL,
                                 recipient=account.contact_email, subject=subject, body=body, kind=kind,
                                 created_at=at))
    if rows:
        rows = Notification.objects.bulk_create(rows)
        ids = [r.pk for r in rows]
        transaction.on_commit(lambda: _enqueue(ids))
    if console:
        Message.objects.create(account=account, kind=kind, title=subject, body=body, created_at=at)
    return rows


def inbox(account_id):
    """The in-console messages of the account ``account_id`` (none without an account)."""
    return Message.objects.filter(account_id=account_id) if account_id else Message.objects.none()


def messages_mark_read(*, account_id, message_id=None, at=None) -> int:
    """Mark the account's unread in-console messages read: the one ``message_id``, or all of them when it is
    ``None``. Returns how many changed; a message of another account is not touched (0).

    Read state is the reader's own view of the inbox, not a business change: it is not audited.
    """
    unread = inbox(account_id).filter(read_at__isnull=True)
    if message_id is not None:
        unread = unread.filter(pk=message_id)
    return unread.update(read_at=at or timezone.now())


def retry_pending(*, older_than_seconds: int = 60) -> int:
    """Enqueue again the pending rows that no worker delivered (after a crash, say)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=cutoff)
               .values_list("pk", flat=True)[:10000])
    _enqueue(ids)
    return len(ids)
