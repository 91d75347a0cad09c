"""Regressions found by the model-based test (``test_stateful_money.py``), kept as plain worked examples."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts import services
from accounts.models import Charge, TopUp
from tests.factories import fund, make_account


def test_charge_paid_from_both_balances_in_cents_floats_cannot_add_R_MON_5_R_MON_1(ent):
    """0.10 from the transfer book balance + 0.20 from own cash = a charge of 0.30.

    On SQLite the CHECK "parts sum to the amount" was evaluated in floating point (0.1 + 0.2 != 0.3)
    and refused this charge with an IntegrityError.
    """
    enterprise, ma, admin = ent
    payer = fund(make_account(enterprise=enterprise), "1000.00")
    account = make_account(enterprise=enterprise)
    services.transfer_create(actor=admin, payer=payer, payee=account, amount="0.10", remark="budget")
    fund(account, "0.20")
    record = services.charge(actor=None, account=account, amount="0.30")
    assert (record.from_transfer_book, record.from_own_cash, record.billed) == (
        Decimal("0.10"), Decimal("0.20"), Decimal("0.00"))


def test_huge_charge_and_top_up_split_exactly_R_MON_5_R_MON_6_R_MON_1(ent):
    enterprise, ma, admin = ent
    account = fund(make_account(enterprise=enterprise), "261.18")
    record = services.charge(actor=None, account=account, amount="999999999999.99")
    assert record.billed == Decimal("999999999738.81")
    top_up = services.top_up(actor=None, account=account, amount="999999999999.99")
    assert (top_up.paid_bills, top_up.to_own_cash) == (Decimal("999999999738.81"), Decimal("261.18"))


@pytest.mark.parametrize("model, field", [(Charge, "billed"), (TopUp, "to_own_cash")])
def test_parts_that_do_not_sum_to_the_amount_are_refused_by_the_database_R_MON_1(ent, model, field):
    enterprise, ma, admin = ent
    account = fund(make_account(enterprise=enterprise), "100.00")
    services.charge(actor=None, account=account, amount="100.30")
    services.top_up(actor=None, account=account, amount="50.00")
    row = model.objects.filter(account=account).order_by("-pk").first()
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{field: getattr(row, field) + Decimal("0.01")})


def test_charge_billed_for_an_earlier_day_alerts_today_and_no_reminder_the_same_day_R_AL_3_R_AL_5(ent):
    """A charge billed late (``at`` three days ago) changes the balance now: the alert is dated now and
    the reminder job run the same day sends nothing; it reminds the next day."""
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from accounts.models import AlertEvent

    enterprise, ma, admin = ent
    account = fund(make_account(enterprise=enterprise), "50.00")
    services.alert_set(actor=admin, account=account, enabled=True, threshold="100.00")
    now = timezone.now()
    services.charge(actor=None, account=account, amount="1.00", at=now - timedelta(days=3))
    alert = AlertEvent.objects.get(account=account)
    assert (alert.kind, timezone.localdate(alert.created_at)) == (AlertEvent.Kind.ALERT, timezone.localdate(now))
    assert services.send_alert_reminders(now=now) == 0
    tomorrow = now + timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=tomorrow):
        assert services.send_alert_reminders() == 1


def test_table_figures_are_exact_cents_R_MON_3(ent):
    """own cash 2.65 + credit limit 1.00 - outstanding 3.64 = available credit 0.01 exactly, also on SQLite
    (its float arithmetic gave 0.0100000000000002 in the account table's annotation)."""
    from accounts import selectors
    from accounts.models import Account
    from tests.factories import effective_contract

    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "100.00")
    account = make_account(enterprise=enterprise)
    services.credit_limit_set(actor=admin, account=account, new_limit="3.85")
    fund(account, "2.65")
    services.charge(actor=None, account=account, amount="6.49")  # 2.65 from own cash, 3.84 billed
    row = selectors.with_figures(Account.objects.filter(pk=account.pk)).get()
    assert row.available_credit_value == Decimal("0.01") == row.available_credit
    assert row.cash_balance_value == Decimal("0.00")


def test_transfer_then_withdraw_back_to_exactly_zero_keeps_the_checks_R_MON_1_R_TR_5(ent):
    """Found by the model test on SQLite: 100.00 - 98.62 - 1.38 in binary floating point is -1.4e-14, which the
    non-negative CHECK refused; balances are rounded to the cent where they are updated."""
    from decimal import Decimal

    from accounts import services
    from tests.factories import fund, make_account

    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="A"), "100.00")
    services.transfer_create(actor=admin, payer=a, payee=ma, amount="98.62", remark="Q3 budget")
    services.transfer_create(actor=admin, payer=a, payee=ma, amount="1.38", remark="Q3 budget")
    services.withdrawal_create(actor=admin, source=a, target=ma, amount="1.38", remark="Q3 budget")
    services.withdrawal_create(actor=admin, source=a, target=ma, amount="98.62", remark="Q3 budget")
    ma.refresh_from_db(); a.refresh_from_db()
    assert (ma.transfer_book_balance, a.own_cash) == (Decimal("0.00"), Decimal("100.00"))
