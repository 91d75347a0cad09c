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


# --- Found by the model-based test of sharing (``test_stateful_sharing.py``) ------------------------------

OTHER_COMPANY = "91440300OTHER0001"


@pytest.fixture
def share_limit_1(monkeypatch):
    """R-SH-4's limit made 1 (both modules that read it), so that a scope is full with one account."""
    from sharing import selectors as sharing_selectors
    from sharing import services as sharing_services

    monkeypatch.setattr(sharing_selectors, "SHARE_LIMIT", 1)
    monkeypatch.setattr(sharing_services, "SHARE_LIMIT", 1)


def test_owner_reverified_as_another_company_gives_nothing_to_accounts_joining_its_folder_scope_R_ORG_5_R_SH_2(ent):
    """The management account's coupon is shared with folder Ops; then the account manager re-verifies the
    management account as another company. An account of that other company moved into Ops received the
    coupon (same company as the owner), although nothing of an account verified as another company than the
    enterprise may be shared, nor anything shared with one (R-ORG-5): a share by id of it is refused."""
    from accounts.models import Account
    from core.errors import DomainError
    from sharing import services as sharing_services
    from sharing.models import Grant, ScopeType
    from tests.sharing.helpers import coupon, folder

    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    a = make_account(enterprise=enterprise, folder=ops)
    cp = coupon(ma)
    sharing_services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    services.account_flags_set(actor=None, account=ma, verified_company_id=OTHER_COMPANY)
    assert not Grant.objects.filter(asset=cp, effective_to__isnull=True).exists()  # A's grant ended (R-SH-5)
    x = make_account(enterprise=enterprise, company_id=OTHER_COMPANY)
    services.accounts_move(actor=admin, accounts=[x], folder=ops)
    assert not Grant.objects.filter(asset=cp).exclude(account=a).exists()
    with pytest.raises(DomainError) as refused:
        sharing_services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS,
                                     accounts=[Account.objects.get(pk=x.pk)])
    assert refused.value.rule == "R-ORG-5"


def test_removed_account_is_no_longer_listed_uncovered_by_an_account_scope_R_SH_4_R_ORG_4(ent, share_limit_1):
    """An automatic rule for accounts B and X (X of another company: the rule counts 1, within the limit).
    X is re-verified as the enterprise's company, so the next coupon reaches 2 accounts: B receives it, X is
    left uncovered (R-SH-4). Removing X from the directory left X listed as uncovered by that coupon."""
    from sharing import selectors as sharing_selectors
    from sharing import services as sharing_services
    from sharing.models import AssetType, ScopeType
    from tests.sharing.helpers import coupon

    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    x = make_account(enterprise=enterprise, company_id=OTHER_COMPANY)
    sharing_services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                                   scope_type=ScopeType.ACCOUNTS, accounts=[b, x])
    services.account_flags_set(actor=None, account=x, verified_company_id=enterprise.company_id)
    cp = coupon(ma)
    assert [u.account_id for u in sharing_selectors.uncovered_accounts(cp)] == [x.pk]
    services.account_remove(actor=admin, account=x)
    assert list(sharing_selectors.uncovered_accounts(cp)) == []


def test_account_reverified_as_another_company_is_no_longer_listed_uncovered_R_SH_5_R_SH_4(ent, share_limit_1):
    """B fills coupon's folder scope Ops; C joins Ops and is left uncovered (R-SH-4). Re-verified as another
    company than the owner, C could not receive the coupon at all (R-SH-5), yet it stayed listed uncovered."""
    from sharing import selectors as sharing_selectors
    from sharing import services as sharing_services
    from sharing.models import ScopeType
    from tests.sharing.helpers import coupon, folder

    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    make_account(enterprise=enterprise, folder=ops)
    c = make_account(enterprise=enterprise)
    cp = coupon(ma)
    sharing_services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    services.accounts_move(actor=admin, accounts=[c], folder=ops)
    assert [u.account_id for u in sharing_selectors.uncovered_accounts(cp)] == [c.pk]
    services.account_flags_set(actor=None, account=c, verified_company_id=OTHER_COMPANY)
    assert list(sharing_selectors.uncovered_accounts(cp)) == []
