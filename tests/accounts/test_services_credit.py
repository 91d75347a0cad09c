"""Credit control (SPEC section 3, R-CR-1 to R-CR-7) with worked figures."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import selectors, services
from accounts import messages
from accounts.ledger import ledger_differences
from accounts.models import CreditChangeRecord, CreditContract, LedgerEntry, Operation, User
from core.errors import PermissionDenied
from core.models import Notification
from tests.books import D, assert_refused, books, figures, ledger_rows, make_overdue
from tests.factories import effective_contract, fund, make_account, make_enterprise, make_manager, make_user, spend


def set_limit(admin, account, new_limit, reason=""):
    return services.credit_limit_set(actor=admin, account=account, new_limit=new_limit, reason=reason)


def sms_to(account, kind):
    return list(Notification.objects.filter(account=account, kind=kind, channel="sms")
                .values_list("recipient", flat=True))


# --- R-CR-1: the first contract is pending until the management account confirms it ---

def test_no_contract_blocks_credit_limits_R_CR_1(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    assert services.credit_blocker(a).message == messages.MSG_NO_CONTRACT
    assert_refused(lambda: set_limit(admin, a, "100.00"), messages.MSG_NO_CONTRACT, rule="R-CR-1")


def test_pending_contract_counts_as_zero_and_blocks_limits_R_CR_1(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    contract = services.credit_contract_grant(actor=make_manager(), enterprise=enterprise,
                                              total_credit_limit="10000.00")
    assert contract.status == CreditContract.Status.PENDING
    assert selectors.credit_summary(enterprise)["total_credit_limit"] == D("0.00")
    assert selectors.maximum_quota_allocable(enterprise) == D("0.00")
    assert services.credit_blocker(a).code == "contract_pending"
    assert_refused(lambda: set_limit(admin, a, "100.00"), messages.MSG_CONTRACT_PENDING, rule="R-CR-1")
    # The MA is told in the console that a contract awaits its confirmation.
    assert ma.messages.filter(kind="credit_contract_pending").count() == 1


def test_new_grant_while_pending_changes_the_amount_without_a_change_record_R_CR_1(ent):
    enterprise, ma, admin = ent
    services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="10000.00")
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="12000.00")
    assert (contract.status, contract.total_credit_limit) == ("pending", D("12000.00"))
    assert CreditContract.objects.count() == 1
    assert CreditChangeRecord.objects.count() == 0


def test_confirming_makes_the_contract_effective_at_once_and_sends_sms_R_CR_1(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="10000.00")
    services.credit_contract_confirm(actor=admin, contract=contract)
    contract.refresh_from_db()
    assert contract.status == CreditContract.Status.EFFECTIVE
    assert contract.confirmed_by == admin and contract.confirmed_at is not None
    assert selectors.maximum_quota_allocable(enterprise) == D("10000.00")
    assert sms_to(ma, "credit_contract_confirmed") == [ma.contact_phone]
    record = CreditChangeRecord.objects.get()
    assert (record.account, record.old_value, record.new_value, record.actor) == (None, 0, D("10000.00"), admin)
    set_limit(admin, a, "100.00")
    assert figures(a)[2] == D("100.00")


def test_only_the_enterprise_administrator_confirms_R_CR_1_R_ORG_6(ent):
    enterprise, ma, admin = ent
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="10000.00")
    member = make_user(account=make_account(enterprise=enterprise), role=User.Role.MEMBER)
    other_admin = make_enterprise(name="Other")[2]
    for actor in (member, other_admin, make_manager()):
        err = assert_refused(lambda: services.credit_contract_confirm(actor=actor, contract=contract),
                             messages.MSG_NOT_ADMIN)
        assert isinstance(err, PermissionDenied)
    services.credit_contract_confirm(actor=admin, contract=contract)
    assert_refused(lambda: services.credit_contract_confirm(actor=admin, contract=contract),
                   messages.MSG_CONTRACT_NOT_PENDING)


def test_only_an_account_manager_grants_credit_R_CR_1_R_ORG_6(ent):
    enterprise, ma, admin = ent
    for actor in (admin, make_user(account=make_account(enterprise=enterprise))):
        assert_refused(lambda: services.credit_contract_grant(actor=actor, enterprise=enterprise,
                                                              total_credit_limit="1.00"),
                       messages.MSG_NOT_ACCOUNT_MANAGER)


# --- R-CR-2: later changes take effect at once and notify by SMS and email ---

def test_change_of_total_takes_effect_at_once_with_sms_and_email_R_CR_2(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "10000.00")
    manager = make_manager()
    contract = services.credit_contract_grant(actor=manager, enterprise=enterprise, total_credit_limit="15000.00",
                                              reason="Annual review")
    assert (contract.status, contract.total_credit_limit) == ("effective", D("15000.00"))
    assert selectors.maximum_quota_allocable(enterprise) == D("15000.00")
    channels = set(Notification.objects.filter(account=ma, kind="credit_total_changed")
                   .values_list("channel", "recipient"))
    assert channels == {("sms", ma.contact_phone), ("email", ma.contact_email)}
    record = CreditChangeRecord.objects.filter(account=None).first()
    assert (record.old_value, record.new_value, record.actor, record.reason) == (
        D("10000.00"), D("15000.00"), manager, "Annual review")


def test_granting_the_same_total_again_is_refused_R_CR_2(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "10000.00")
    assert_refused(lambda: services.credit_contract_grant(actor=None, enterprise=enterprise,
                                                          total_credit_limit="10,000.00"),
                   "The total credit limit is already 10,000.00.")


# --- R-CR-3: maximum quota allocable = total - all credit limits - all overdue amounts ---

@pytest.fixture
def credit_ent(ent):
    """Total 10,000.00; MA limit 500.00, A 1,000.00, B 2,000.00; C has an overdue bill of 1,500.00."""
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "10000.00")
    a = make_account(enterprise=enterprise, name="A")
    b = make_account(enterprise=enterprise, name="B")
    c = make_account(enterprise=enterprise, name="C")
    set_limit(admin, ma, "500.00")
    set_limit(admin, a, "1000.00")
    set_limit(admin, b, "2000.00")
    spend(c, "1500.00")
    make_overdue(c)
    for account in (ma, a, b, c):
        account.refresh_from_db()
    return enterprise, admin, ma, a, b, c


def test_maximum_quota_allocable_counts_every_limit_and_overdue_amount_R_CR_3(credit_ent):
    enterprise, admin, ma, a, b, c = credit_ent
    assert selectors.credit_summary(enterprise) == {
        "total_credit_limit": D("10000.00"), "allocated": D("3500.00"), "overdue": D("1500.00"),
        "maximum_quota_allocable": D("5000.00")}


def test_unpaid_bill_not_yet_due_does_not_reduce_the_allocable_R_CR_3(credit_ent):
    enterprise, admin, ma, a, b, c = credit_ent
    spend(a, "700.00")  # A's unpaid bill, due in the future
    assert selectors.maximum_quota_allocable(enterprise) == D("5000.00")
    # A day after its due date it is overdue and counts.
    later = timezone.localdate() + timedelta(days=30)
    assert selectors.maximum_quota_allocable(enterprise, on=later) == D("4300.00")


def test_negative_allocable_after_lowering_the_total_blocks_increases_only_R_CR_3(credit_ent):
    enterprise, admin, ma, a, b, c = credit_ent
    services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="4000.00")
    # 4,000.00 - 3,500.00 - 1,500.00 = -1,000.00: nothing is reduced automatically.
    assert selectors.maximum_quota_allocable(enterprise) == D("-1000.00")
    assert [figures(x)[2] for x in (ma, a, b)] == [D("500.00"), D("1000.00"), D("2000.00")]
    assert selectors.credit_limit_range(a)["highest_credit_limit"] == D("1000.00")
    assert_refused(lambda: set_limit(admin, a, "1000.01"),
                   messages.MSG_OVER_ALLOCABLE.format(allocable="-1,000.00", highest="1,000.00", amount="1,000.01"),
                   rule="R-CR-4")
    set_limit(admin, a, "400.00")  # a decrease is still allowed
    assert selectors.maximum_quota_allocable(enterprise) == D("-400.00")


# --- R-CR-4: an increase may not exceed the maximum quota allocable ---

def test_increase_up_to_exactly_the_allocable_and_one_cent_over_refused_R_CR_4(credit_ent):
    enterprise, admin, ma, a, b, c = credit_ent
    rng = selectors.credit_limit_range(a)
    assert (rng["maximum_quota_allocable"], rng["highest_credit_limit"]) == (D("5000.00"), D("6000.00"))
    err = assert_refused(lambda: set_limit(admin, a, "6000.01"),
                         "Maximum quota allocable is 5,000.00, so the highest credit limit allowed is 6,000.00; "
                         "you asked for 6,000.01 (R-CR-4).")
    assert err.field == "new_limit"
    set_limit(admin, a, "6000.00")
    assert figures(a)[2] == D("6000.00")
    assert selectors.maximum_quota_allocable(enterprise) == D("0.00")
    assert_refused(lambda: set_limit(admin, b, "2000.01"),
                   messages.MSG_OVER_ALLOCABLE.format(allocable="0.00", highest="2,000.00", amount="2,000.01"))


def test_paying_the_overdue_bill_frees_quota_R_CR_3_R_CR_4(credit_ent):
    enterprise, admin, ma, a, b, c = credit_ent
    fund(c, "1500.00")
    assert selectors.maximum_quota_allocable(enterprise) == D("6500.00")
    set_limit(admin, a, "7500.00")


# --- R-CR-5: a decrease keeps available credit strictly above 0 ---

def test_decrease_keeps_available_credit_strictly_positive_R_CR_5(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "10000.00")
    a = fund(make_account(enterprise=enterprise), "100.00")
    set_limit(admin, a, "1000.00")
    spend(a, "1000.00")  # 100.00 from own cash, a bill of 900.00
    assert figures(a) == (D("0.00"), D("0.00"), D("1000.00"), D("900.00"))
    assert a.available_credit == D("100.00")
    assert selectors.lowest_credit_limit(a) == D("900.01")
    err = assert_refused(
        lambda: set_limit(admin, a, "900.00"),
        "The lowest credit limit allowed is 900.01: available credit must stay above 0.00 (cash balance 0.00 + "
        "new limit - outstanding 900.00); you asked for 900.00 (R-CR-5).", rule="R-CR-5")
    assert err.field == "new_limit"
    set_limit(admin, a, "900.01")
    a.refresh_from_db()
    assert a.available_credit == D("0.01")


def test_decrease_to_zero_of_an_empty_account_is_refused_R_CR_5(ent):
    """Cash 0.00 + new limit 0.00 - outstanding 0.00 = 0.00, which is not strictly above 0."""
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise)
    set_limit(admin, a, "500.00")
    assert selectors.lowest_credit_limit(a) == D("0.01")
    assert_refused(lambda: set_limit(admin, a, "0.00"), messages.MSG_DECREASE_TOO_LOW.format(
        lowest="0.01", cash="0.00", outstanding="0.00", amount="0.00"))
    fund(a, "0.01")
    set_limit(admin, a, "0")
    assert figures(a)[2] == D("0.00")


def test_unchanged_limit_refused(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise)
    assert_refused(lambda: set_limit(admin, a, "0.00"), messages.MSG_LIMIT_UNCHANGED.format(current="0.00"))


def test_credit_limit_amount_rules_R_MON_1(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise)
    assert_refused(lambda: set_limit(admin, a, "-1"), "The amount cannot be negative (R-MON-1).")
    assert_refused(lambda: set_limit(admin, a, "1.005"), "An amount has at most 2 decimal places (R-MON-1).")


# --- R-CR-6: pay on behalf and risk flag disable credit control; R-ORG-5: other company ---

@pytest.mark.parametrize("flag, reason", [
    ("pay_on_behalf", "pay on behalf of an ecosystem partner"),
    ("risk_flag", "significant receivables with long-overdue history"),
])
def test_flagged_account_credit_control_disabled_R_CR_6(ent, flag, reason):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise, **{flag: True})
    message = messages.MSG_DISABLED.format(account=a.account_id, reason=reason)
    assert services.credit_blocker(a).message == message
    assert "contact your business manager" in message.lower()
    assert_refused(lambda: set_limit(admin, a, "100.00"), message, rule="R-CR-6")


def test_other_company_account_credit_refused_R_ORG_5(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise, company_id="91440000OTHER0001")
    assert_refused(lambda: set_limit(admin, a, "100.00"),
                   messages.MSG_OTHER_COMPANY.format(account=a.account_id), rule="R-ORG-5")


def test_credit_limit_refused_for_other_enterprise_and_members_R_ORG_6(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise)
    other_admin = make_enterprise(name="Other")[2]
    assert_refused(lambda: set_limit(other_admin, a, "1.00"), messages.MSG_NOT_IN_ENTERPRISE.format(
        account=a.account_id))
    assert_refused(lambda: set_limit(make_user(account=a), a, "1.00"), messages.MSG_NOT_ADMIN)


# --- R-CR-7: change records, ledger, SMS ---

def test_limit_change_is_recorded_with_ledger_row_and_sms_R_CR_7(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise, phone="13912345678")
    ledger_before = LedgerEntry.objects.count()
    record = set_limit(admin, a, "300.00", reason="Project launch")
    assert (record.account, record.old_value, record.new_value, record.actor, record.reason) == (
        a, D("0.00"), D("300.00"), admin, "Project launch")
    assert ledger_rows(record.operation) == {(a.pk, "credit_limit", D("300.00"))}
    assert record.operation.kind == Operation.Kind.CREDIT_LIMIT and record.operation.external_amount == 0
    assert LedgerEntry.objects.count() == ledger_before + 1
    set_limit(admin, a, "120.00")
    assert sms_to(a, "credit_limit_changed") == ["13912345678", "13912345678"]
    assert not Notification.objects.filter(account=a, kind="credit_limit_changed", channel="email").exists()
    assert [(r.old_value, r.new_value) for r in selectors.credit_change_records(enterprise, account=a)] == [
        (D("300.00"), D("120.00")), (D("0.00"), D("300.00"))]
    assert ledger_differences() == []


def test_change_records_filter_by_account_and_date_R_CR_7(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a, b = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    old = set_limit(admin, a, "100.00")
    CreditChangeRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    new = set_limit(admin, b, "200.00")
    records = selectors.credit_change_records(enterprise)
    # The contract confirmation (enterprise record) and both account records, newest first.
    assert [r.account for r in records] == [b, None, a]
    assert list(selectors.credit_change_records(enterprise, account=a)) == [old]
    today = timezone.localdate()
    assert new in selectors.credit_change_records(enterprise, date_from=today)
    assert old not in selectors.credit_change_records(enterprise, date_from=today)
    assert list(selectors.credit_change_records(enterprise, account=a, date_to=today - timedelta(days=1))) == [old]
    # Another enterprise's records never show.
    other, _, other_admin = make_enterprise(name="Other")
    assert list(selectors.credit_change_records(other)) == []


def test_credit_limit_raises_available_credit_but_not_cash_R_MON_3(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = fund(make_account(enterprise=enterprise), "50.00")
    set_limit(admin, a, "200.00")
    a.refresh_from_db()
    assert (a.cash_balance, a.available_credit) == (D("50.00"), D("250.00"))


def test_refused_limit_change_writes_nothing(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "100.00")
    a = make_account(enterprise=enterprise)
    before = books()
    with pytest.raises(Exception):
        set_limit(admin, a, "100.01")
    assert books() == before
