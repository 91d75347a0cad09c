"""Low balance alerts and daily reminders (SPEC section 5, R-AL-1 to R-AL-5)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts import services
from accounts import messages
from accounts.models import Account, AlertEvent
from core import money
from core.models import Message, Notification
from tests.books import D, assert_refused, make_overdue
from tests.factories import effective_contract, fund, make_account, make_enterprise, make_user, spend


def alerts(account):
    return AlertEvent.objects.filter(account=account, kind=AlertEvent.Kind.ALERT).count()


def reminders(account):
    return AlertEvent.objects.filter(account=account, kind=AlertEvent.Kind.REMINDER).count()


@pytest.fixture
def watched(ent):
    """Account A with 1,000.00 and an enabled alert at a threshold of 500.00."""
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, phone="13700000001", email="a@example.com"), "1000.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="500.00")
    return admin, a


# --- R-AL-1: a threshold >= 0 on available credit, and a switch ---

def test_alert_threshold_and_switch_are_stored_R_AL_1_R_AL_4(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    services.alert_set(actor=admin, account=a, enabled=True, threshold="1,500.00")
    a.refresh_from_db()
    assert (a.alert_enabled, a.alert_threshold) == (True, D("1500.00"))
    services.alert_set(actor=admin, account=a, enabled=False, threshold="0")
    a.refresh_from_db()
    assert (a.alert_enabled, a.alert_threshold) == (False, D("0.00"))


def test_alert_threshold_must_not_be_negative_R_AL_1(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    err = assert_refused(lambda: services.alert_set(actor=admin, account=a, enabled=True, threshold="-0.01"),
                         money.MSG_AMOUNT_NEGATIVE)
    assert err.field == "threshold"
    assert_refused(lambda: services.alert_set(actor=admin, account=a, enabled=True, threshold="1.999"),
                   money.MSG_AMOUNT_DECIMALS)


def test_only_the_administrator_of_the_enterprise_sets_alerts_R_AL_1_R_ORG_6(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    assert_refused(lambda: services.alert_set(actor=make_user(account=a), account=a, enabled=True, threshold="1"),
                   messages.MSG_NOT_ADMIN)
    other_admin = make_enterprise(name="Other")[2]
    assert_refused(lambda: services.alert_set(actor=other_admin, account=a, enabled=True, threshold="1"),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=a.account_id))


# --- R-AL-2: batch setting, all or none ---

def test_batch_applies_one_threshold_and_switch_to_every_account_R_AL_2(ent):
    enterprise, ma, admin = ent
    accounts = [make_account(enterprise=enterprise) for _ in range(3)]
    services.alert_set_many(actor=admin, accounts=accounts, enabled=True, threshold="250.00")
    assert set(Account.objects.filter(pk__in=[a.pk for a in accounts])
               .values_list("alert_enabled", "alert_threshold")) == {(True, D("250.00"))}


def test_batch_with_one_foreign_account_changes_none_R_AL_2(ent):
    enterprise, ma, admin = ent
    mine = [make_account(enterprise=enterprise) for _ in range(2)]
    foreign = make_account(enterprise=make_enterprise(name="Other")[0])
    assert_refused(lambda: services.alert_set_many(actor=admin, accounts=[*mine, foreign], enabled=True,
                                                   threshold="1.00"),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=foreign.account_id))


def test_batch_needs_at_least_one_account_R_AL_2(ent):
    enterprise, ma, admin = ent
    assert_refused(lambda: services.alert_set_many(actor=admin, accounts=[], enabled=True, threshold="1.00"),
                   messages.MSG_NO_ACCOUNTS, rule="R-AL-2")


# --- R-AL-3: one alert per below-threshold episode, on an actual change of the balance ---

def test_alert_fires_once_when_available_credit_drops_below_threshold_R_AL_3(watched):
    admin, a = watched
    assert alerts(a) == 0  # enabling while above sends nothing
    spend(a, "500.00")  # available 500.00: exactly at the threshold is not below
    assert alerts(a) == 0
    spend(a, "0.01")  # 499.99: below
    assert alerts(a) == 1
    event = AlertEvent.objects.get(account=a)
    assert (event.available_credit, event.threshold) == (D("499.99"), D("500.00"))
    # SMS, email and an in-console message, in the same transaction as the charge.
    assert set(Notification.objects.filter(account=a, kind="low_balance_alert").values_list("channel", "recipient")) \
        == {("sms", "13700000001"), ("email", "a@example.com")}
    message = Message.objects.get(account=a, kind="low_balance_alert")
    assert "499.99" in message.body and "500.00" in message.body
    spend(a, "100.00")  # still below: no second alert in this episode
    fund(a, "50.00")
    assert alerts(a) == 1


def test_alert_fires_again_after_the_account_was_back_at_the_threshold_R_AL_3(watched):
    admin, a = watched
    spend(a, "600.00")  # 400.00
    assert alerts(a) == 1
    fund(a, "100.00")  # 500.00: at the threshold ends the episode
    a.refresh_from_db()
    assert a.alert_sent_at is None
    spend(a, "0.01")
    assert alerts(a) == 2


def test_transfer_alerts_the_payer_R_AL_3(ent, watched):
    admin, a = watched
    b = make_account(enterprise=ent[0])
    services.transfer_create(actor=admin, payer=a, payee=b, amount="600.00", remark="x")
    assert alerts(a) == 1


def test_credit_limit_decrease_is_a_balance_change_that_alerts_R_AL_3(ent, watched):
    enterprise, ma, _ = ent
    admin, a = watched
    effective_contract(enterprise, admin, "1000.00")
    services.credit_limit_set(actor=admin, account=a, new_limit="1000.00")
    spend(a, "1200.00")  # available 800.00, above
    assert alerts(a) == 0
    services.credit_limit_set(actor=admin, account=a, new_limit="600.00")  # available 400.00
    assert alerts(a) == 1


def test_enabling_while_below_sends_nothing_until_the_balance_next_changes_R_AL_3(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="500.00")
    assert alerts(a) == 0
    assert services.send_alert_reminders(now=timezone.now() + timedelta(days=1)) == 0
    spend(a, "1.00")
    assert alerts(a) == 1


def test_changing_the_threshold_starts_afresh_R_AL_3(watched):
    admin, a = watched
    spend(a, "600.00")
    assert alerts(a) == 1
    services.alert_set(actor=admin, account=a, enabled=True, threshold="450.00")
    a.refresh_from_db()
    assert a.alert_sent_at is None
    assert alerts(a) == 1  # no alert at the moment of setting
    spend(a, "1.00")  # the balance changes while below the new threshold
    assert alerts(a) == 2


def test_disabled_alert_sends_nothing_R_AL_3(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    services.alert_set(actor=admin, account=a, enabled=False, threshold="500.00")
    spend(a, "50.00")
    assert alerts(a) == 0
    assert not Message.objects.filter(account=a).exists()


def test_refused_operation_sends_no_alert_R_AL_3(ent, watched):
    admin, a = watched
    b = make_account(enterprise=ent[0])
    with pytest.raises(Exception):
        services.transfer_create(actor=admin, payer=a, payee=b, amount="1000.01", remark="x")
    assert alerts(a) == 0


# --- R-AL-5: a reminder once a day for at most 5 days, stopping when overdue or recovered ---

def _below(watched):
    admin, a = watched
    spend(a, "600.00")
    assert alerts(a) == 1
    return a


def test_reminder_once_a_day_for_at_most_five_days_R_AL_5(watched):
    a = _below(watched)
    now = timezone.now()
    assert services.send_alert_reminders(now=now) == 0  # the alert itself went out today
    sent = []
    for day in range(1, 9):
        at = now + timedelta(days=day)
        sent.append(services.send_alert_reminders(now=at))
        assert services.send_alert_reminders(now=at + timedelta(minutes=30)) == 0  # twice a day: once
    assert sent == [1, 1, 1, 1, 1, 0, 0, 0]
    assert reminders(a) == 5
    assert Message.objects.filter(account=a, kind="low_balance_reminder").count() == 5
    assert Notification.objects.filter(account=a, kind="low_balance_reminder", channel="sms").count() == 5


def test_reminders_stop_when_back_at_the_threshold_R_AL_5(watched):
    a = _below(watched)
    now = timezone.now()
    assert services.send_alert_reminders(now=now + timedelta(days=1)) == 1
    fund(a, "100.00")  # exactly 500.00
    assert services.send_alert_reminders(now=now + timedelta(days=2)) == 0
    assert reminders(a) == 1


def test_reminders_stop_once_the_account_is_overdue_R_AL_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="50.00")
    spend(a, "300.00")  # bill of 200.00, due in 15 days
    assert alerts(a) == 1
    now = timezone.now()
    assert services.send_alert_reminders(now=now + timedelta(days=1)) == 1
    assert services.send_alert_reminders(now=now + timedelta(days=2)) == 1
    # 16 days on the bill is overdue: reminders stop even though they were not used up.
    assert services.send_alert_reminders(now=now + timedelta(days=16)) == 0
    make_overdue(a)
    assert services.send_alert_reminders(now=now + timedelta(days=3)) == 0
    assert reminders(a) == 2


def test_reminders_stop_when_the_alert_is_disabled_R_AL_5(watched):
    admin, a = watched
    _below(watched)
    services.alert_set(actor=admin, account=a, enabled=False, threshold="500.00")
    assert services.send_alert_reminders(now=timezone.now() + timedelta(days=1)) == 0


def test_send_alert_reminders_command_is_safe_to_run_twice_a_day_R_AL_5(watched):
    a = _below(watched)
    # The alert went out yesterday.
    Account.objects.filter(pk=a.pk).update(alert_last_reminder_on=timezone.localdate() - timedelta(days=1))
    first, second = StringIO(), StringIO()
    call_command("send_alert_reminders", stdout=first)
    call_command("send_alert_reminders", stdout=second)
    assert first.getvalue().strip() == "1 reminder(s) sent."
    assert second.getvalue().strip() == "0 reminder(s) sent."
    assert reminders(a) == 1
