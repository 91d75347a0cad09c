"""Notifications (R-NT-1): an outbox written in the causing transaction, delivered after commit by a task;
a failing delivery never rolls back the money operation."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts import services
from core.models import Message, Notification
from tests.books import D, figures
from tests.core import gateways
from tests.factories import effective_contract, fund, make_account, spend


@pytest.fixture
def low(ent):
    """Account A (phone and email) with an alert at 500.00 and 1,000.00 of own cash."""
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, phone="13700000002", email="fin@example.com"), "1000.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="500.00")
    return a


@pytest.fixture(autouse=True)
def _email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    gateways.SENT.clear()


def test_outbox_rows_written_in_the_operation_and_delivered_after_commit_R_NT_1(
        low, settings, django_capture_on_commit_callbacks):
    settings.EAC_SMS_GATEWAY = "tests.core.gateways.RecordingSmsGateway"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        spend(low, "600.00")
        rows = list(Notification.objects.filter(account=low, kind="low_balance_alert"))
        assert {(n.channel, n.status) for n in rows} == {("sms", "pending"), ("email", "pending")}
        assert gateways.SENT == [] and mail.outbox == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert set(Notification.objects.filter(account=low).values_list("channel", "status")) == {
        ("sms", "sent"), ("email", "sent")}
    assert gateways.SENT[0][0] == "13700000002" and "400.00" in gateways.SENT[0][1]
    assert mail.outbox[0].to == ["fin@example.com"] and "Low balance alert" in mail.outbox[0].subject
    # The in-console message is stored per account.
    assert Message.objects.filter(account=low, kind="low_balance_alert").count() == 1


def test_rolled_back_operation_leaves_no_notification_R_NT_1(low, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                spend(low, "600.00")
                raise RuntimeError("the caller's transaction fails afterwards")
    assert callbacks == []
    assert not Notification.objects.exists() and not Message.objects.exists()
    assert figures(low)[0] == D("1000.00")


def test_failing_sms_gateway_never_rolls_back_the_money_operation_R_NT_1(
        low, settings, django_capture_on_commit_callbacks):
    settings.EAC_SMS_GATEWAY = "tests.core.gateways.FailingSmsGateway"
    with django_capture_on_commit_callbacks(execute=True):
        record = services.charge(actor=None, account=low, amount="600.00")
    assert figures(low)[0] == D("400.00")
    assert record.pk is not None
    sms = Notification.objects.get(account=low, kind="low_balance_alert", channel="sms")
    assert (sms.status, sms.attempts, sms.last_error) == ("pending", 1, "SMS gateway unreachable")
    # The other channel is unaffected.
    assert Notification.objects.get(account=low, kind="low_balance_alert", channel="email").status == "sent"
    assert len(mail.outbox) == 1


def test_failed_delivery_retried_then_marked_failed_R_NT_1(low, settings, django_capture_on_commit_callbacks):
    settings.EAC_SMS_GATEWAY = "tests.core.gateways.FailingSmsGateway"
    settings.EAC_NOTIFICATION_MAX_ATTEMPTS = 3
    with django_capture_on_commit_callbacks(execute=True):
        spend(low, "600.00")
    sms = Notification.objects.get(channel="sms", kind="low_balance_alert")
    Notification.objects.filter(pk=sms.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    out = StringIO()
    call_command("retry_notifications", stdout=out)
    assert out.getvalue().strip() == "1 notification(s) enqueued again."
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == ("pending", 2)
    call_command("retry_notifications", stdout=StringIO())
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == ("failed", 3)
    call_command("retry_notifications", stdout=out)  # a failed row is not retried again
    sms.refresh_from_db()
    assert sms.attempts == 3


def test_retry_delivers_once_the_gateway_is_back_R_NT_1(low, settings, django_capture_on_commit_callbacks):
    settings.EAC_SMS_GATEWAY = "tests.core.gateways.FailingSmsGateway"
    with django_capture_on_commit_callbacks(execute=True):
        spend(low, "600.00")
    settings.EAC_SMS_GATEWAY = "tests.core.gateways.RecordingSmsGateway"
    call_command("retry_notifications", "--older-than=0", stdout=StringIO())
    sms = Notification.objects.get(channel="sms", kind="low_balance_alert")
    assert (sms.status, sms.attempts, sms.last_error) == ("sent", 2, "")
    assert len(gateways.SENT) == 1
    # A sent row is never sent twice.
    call_command("retry_notifications", "--older-than=0", stdout=StringIO())
    assert len(gateways.SENT) == 1


def test_default_sms_gateway_writes_to_the_log_R_NT_1(low, caplog, django_capture_on_commit_callbacks, settings):
    settings.EAC_SMS_GATEWAY = "core.sms.LogSmsGateway"
    with caplog.at_level("INFO", logger="eac.sms"):
        with django_capture_on_commit_callbacks(execute=True):
            spend(low, "600.00")
    assert any("SMS to 13700000002" in r.getMessage() for r in caplog.records)


def test_accounts_without_contacts_get_only_the_console_message_R_NT_1(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, phone="", email=""), "10.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="20.00")
    spend(a, "1.00")
    assert not Notification.objects.filter(account=a).exists()
    assert Message.objects.filter(account=a, kind="low_balance_alert").count() == 1


def test_credit_limit_sms_goes_to_the_outbox_R_CR_7_R_NT_1(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "100.00")
    a = make_account(enterprise=enterprise, phone="13600000003")
    services.credit_limit_set(actor=admin, account=a, new_limit="50.00")
    sms = Notification.objects.get(account=a, kind="credit_limit_changed")
    assert (sms.channel, sms.recipient) == ("sms", "13600000003")
    assert "0.00 to 50.00" in sms.body


@pytest.mark.django_db(transaction=True)
def test_failing_gateway_after_a_real_commit_keeps_the_money_operation_R_NT_1(settings):
    """Without the test transaction: the service commits, on_commit runs the task, the gateway raises."""
    from tests.factories import make_enterprise

    settings.EAC_SMS_GATEWAY = "tests.core.gateways.FailingSmsGateway"
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise, phone="13500000004"), "1000.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="500.00")
    services.charge(actor=None, account=a, amount="600.00")
    assert figures(a)[0] == D("400.00")
    sms = Notification.objects.get(account=a, kind="low_balance_alert", channel="sms")
    assert (sms.status, sms.attempts, sms.last_error) == ("pending", 1, "SMS gateway unreachable")


def test_marking_messages_read_touches_only_the_readers_own_unread_messages_R_NT_1(ent):
    from core import notifications

    enterprise, ma, admin = ent
    mine, other = make_account(enterprise=enterprise, name="Mine"), make_account(enterprise=enterprise, name="Other")
    at = timezone.now()
    first, second = (Message.objects.create(account=mine, kind="k", title=t, body="b", created_at=at) for t in "12")
    foreign = Message.objects.create(account=other, kind="k", title="x", body="b", created_at=at)
    assert notifications.messages_mark_read(account_id=mine.pk, message_id=foreign.pk) == 0
    assert notifications.messages_mark_read(account_id=mine.pk, message_id=first.pk) == 1
    assert notifications.messages_mark_read(account_id=mine.pk, message_id=first.pk) == 0  # already read
    assert notifications.messages_mark_read(account_id=mine.pk) == 1  # the second one
    assert notifications.messages_mark_read(account_id=None) == 0
    for message in (first, second, foreign):
        message.refresh_from_db()
    assert first.read_at is not None and second.read_at is not None and foreign.read_at is None
