import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from .models import Notification
from .sms import get_sms_gateway

log = logging.getLogger("eac.notifications")


@task()
def deliver_notification(notification_id: int) -> str:
    """Deliver one outbox row. A failure is recorded on the row, never raised into a money operation."""
    with transaction.atomic():
        note = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if note is None or note.status == Notification.Status.SENT:
            return "skipped"
        note.attempts += 1
        try:
            if note.channel == Notification.Channel.SMS:
                get_sms_gateway().send(phone=note.recipient, text=f"{note.subject}: {note.body}")
            else:
                send_mail(note.subject, note.body, settings.DEFAULT_FROM_EMAIL, [note.recipient])
        except Exception as exc:  # a gateway may fail in any way; the row keeps the reason
            log.warning("delivery of notification %s failed: %s", note.pk, exc)
            note.last_error = str(exc)[:2000]
            if note.attempts >= settings.EAC_NOTIFICATION_MAX_ATTEMPTS:
                note.status = Notification.Status.FAILED
            note.save(update_fields=["attempts", "last_error", "status"])
            return "failed"
        note.status = Notification.Status.SENT
        note.sent_at = timezone.now()
        note.last_error = ""
        note.save(update_fields=["attempts", "last_error", "status", "sent_at"])
        return "sent"
