"""Balance transfer and withdrawal (SPEC section 4, R-TR-1 to R-TR-6, R-TR-8) with worked figures."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts import selectors, services
from accounts import messages
from accounts.ledger import ledger_differences
from accounts.models import LedgerEntry, Operation, TransferPair, TransferRecord, User
from core import money
from core.errors import PermissionDenied
from tests.books import D, assert_refused, figures, ledger_rows, make_overdue
from tests.factories import fund, make_account, make_enterprise, make_manager, make_user, spend

M = money.format_money


def transfer(admin, a, b, amount, remark="budget"):
    return services.transfer_create(actor=admin, payer=a, payee=b, amount=amount, remark=remark)


def withdraw(admin, a, b, amount, remark="back"):
    return services.withdrawal_create(actor=admin, source=a, target=b, amount=amount, remark=remark)


@pytest.fixture
def ab(ent):
    """Accounts A (1,000.00 own cash) and B (empty) of the enterprise."""
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="A"), "1000.00")
    b = make_account(enterprise=enterprise, name="B")
    return admin, a, b


# --- R-TR-2: transferable amount = min(own cash, available credit), floored at 0 ---

def test_transferable_is_own_cash_not_the_transfer_book_R_TR_2(ent, ab):
    admin, a, b = ab
    c = fund(make_account(enterprise=ent[0]), "500.00")
    transfer(admin, c, a, "200.00")
    a.refresh_from_db()
    # cash balance 1,200.00 - transfer book 200.00 = 1,000.00; available credit 1,200.00.
    assert a.cash_balance == D("1200.00") and a.available_credit == D("1200.00")
    assert selectors.transferable_amount(a) == D("1000.00")


def test_transferable_not_raised_by_credit_limit_R_TR_2(ent, ab):
    enterprise, ma, admin = ent
    _, a, b = ab
    services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="5000.00")
    services.credit_contract_confirm(actor=admin, contract=enterprise.credit_contract)
    services.credit_limit_set(actor=admin, account=a, new_limit="5000.00")
    a.refresh_from_db()
    assert a.available_credit == D("6000.00")
    assert selectors.transferable_amount(a) == D("1000.00")


def _a_with_cash_and_unpaid_bill(admin, a, b, *, bill):
    """A transfers all 1,000.00 to B, is charged ``bill`` (an unpaid bill, not overdue), withdraws 500.00."""
    transfer(admin, a, b, "1000.00")
    spend(a, bill)
    withdraw(admin, a, b, "500.00")
    a.refresh_from_db()


def test_transferable_is_available_credit_when_lower_R_TR_2(ab):
    admin, a, b = ab
    _a_with_cash_and_unpaid_bill(admin, a, b, bill="300.00")
    # own cash 500.00, outstanding 300.00 -> available credit 200.00 < own cash.
    assert figures(a) == (D("500.00"), D("0.00"), D("0.00"), D("300.00"))
    assert selectors.transferable_amount(a) == D("200.00")
    assert_refused(lambda: transfer(admin, a, b, "200.01"),
                   messages.MSG_OVER_TRANSFERABLE.format(limit="200.00", amount="200.01"), rule="R-TR-2")
    transfer(admin, a, b, "200.00")  # exactly the transferable amount
    assert figures(a) == (D("300.00"), D("0.00"), D("0.00"), D("300.00"))
    assert selectors.transferable_amount(a) == D("0.00")


def test_transferable_floored_at_zero_R_TR_2(ab):
    admin, a, b = ab
    _a_with_cash_and_unpaid_bill(admin, a, b, bill="800.00")
    # own cash 500.00, outstanding 800.00 -> available credit -300.00, transferable 0.00 (not -300.00).
    assert a.available_credit == D("-300.00")
    assert selectors.transferable_amount(a) == D("0.00")
    assert_refused(lambda: transfer(admin, a, b, "0.01"),
                   "Transferable amount is 0.00; you asked for 0.01 (R-TR-2).")


def test_transfer_up_to_exactly_transferable_and_one_cent_over_refused_R_TR_2(ab):
    admin, a, b = ab
    err = assert_refused(lambda: transfer(admin, a, b, "1000.01"),
                         "Transferable amount is 1,000.00; you asked for 1,000.01 (R-TR-2).")
    assert err.field == "amount"
    transfer(admin, a, b, "1000.00")
    assert figures(a)[0] == D("0.00")


def test_transfer_refused_when_payer_overdue_R_TR_2(ab):
    admin, a, b = ab
    _a_with_cash_and_unpaid_bill(admin, a, b, bill="300.00")
    make_overdue(a)
    assert selectors.overdue_amount(a) == D("300.00")
    err = assert_refused(lambda: transfer(admin, a, b, "100.00"),
                         messages.MSG_PAYER_OVERDUE.format(account=a.account_id, overdue="300.00"), rule="R-TR-2")
    assert err.field == "payer"


def test_transfer_allowed_when_bill_due_today_R_TR_2(ab):
    """Overdue means past the due date: a bill due today is not overdue yet."""
    admin, a, b = ab
    _a_with_cash_and_unpaid_bill(admin, a, b, bill="100.00")
    a.bills.update(due_date=timezone.localdate())
    assert selectors.overdue_amount(a) == D("0.00")
    transfer(admin, a, b, "100.00")


@pytest.mark.parametrize("amount, message", [
    ("0", money.MSG_AMOUNT_POSITIVE),
    ("-1.00", money.MSG_AMOUNT_NEGATIVE),
    ("1.001", money.MSG_AMOUNT_DECIMALS),
    ("ten", money.MSG_AMOUNT_FORMAT),
])
def test_transfer_amount_must_be_positive_with_two_decimals_R_TR_2(ab, amount, message):
    admin, a, b = ab
    assert_refused(lambda: transfer(admin, a, b, amount), message, rule="R-MON-1")


# --- R-TR-3: effect of a transfer ---

def test_transfer_effect_on_balances_pair_record_and_ledger_R_TR_3(ab):
    admin, a, b = ab
    ledger_before = LedgerEntry.objects.count()
    record = transfer(admin, a, b, "400.00", remark="Q3 budget")
    assert figures(a) == (D("600.00"), D("0.00"), D("0.00"), D("0.00"))
    assert figures(b) == (D("0.00"), D("400.00"), D("0.00"), D("0.00"))
    pair = TransferPair.objects.get(source=a, target=b)
    assert pair.remaining_revocable == D("400.00")
    assert (record.kind, record.payer, record.payee, record.amount, record.remark, record.actor) == (
        TransferRecord.Kind.TRANSFER, a, b, D("400.00"), "Q3 budget", admin)
    assert TransferRecord.objects.count() == 1
    assert record.operation.kind == Operation.Kind.TRANSFER and record.operation.external_amount == 0
    assert ledger_rows(record.operation) == {(a.pk, "own_cash", D("-400.00")), (b.pk, "transfer_book", D("400.00"))}
    assert LedgerEntry.objects.count() == ledger_before + 2
    # A second transfer adds to the pair's remaining revocable amount.
    transfer(admin, a, b, "100.00")
    pair.refresh_from_db()
    assert (pair.remaining_revocable, pair.total_transferred) == (D("500.00"), D("500.00"))
    assert ledger_differences() == []


def test_transfer_book_balance_cannot_be_transferred_again_R_MON_2_R_TR_3(ent, ab):
    admin, a, b = ab
    c = make_account(enterprise=ent[0])
    transfer(admin, a, b, "400.00")
    b.refresh_from_db()
    assert selectors.transferable_amount(b) == D("0.00")
    assert_refused(lambda: transfer(admin, b, c, "0.01"),
                   "Transferable amount is 0.00; you asked for 0.01 (R-TR-2).")


# --- R-TR-1: who and between which accounts; the remark ---

def test_transfer_refused_between_same_account_R_TR_1(ab):
    admin, a, b = ab
    assert_refused(lambda: transfer(admin, a, a, "1.00"), messages.MSG_SAME_ACCOUNT, rule="R-TR-1")
    assert_refused(lambda: withdraw(admin, a, a, "1.00"), messages.MSG_SAME_ACCOUNT, rule="R-TR-1")


@pytest.mark.parametrize("remark, message", [
    ("", messages.MSG_REMARK_REQUIRED),
    ("   ", messages.MSG_REMARK_REQUIRED),
    (None, messages.MSG_REMARK_REQUIRED),
    ("x" * 201, messages.MSG_REMARK_TOO_LONG.format(length=201)),
])
def test_transfer_and_withdrawal_need_a_remark_of_1_to_200_characters_R_TR_1(ab, remark, message):
    admin, a, b = ab
    err = assert_refused(lambda: transfer(admin, a, b, "1.00", remark=remark), message, rule="R-TR-1")
    assert err.field == "remark"
    transfer(admin, a, b, "1.00")
    assert_refused(lambda: withdraw(admin, a, b, "1.00", remark=remark), message, rule="R-TR-1")


def test_remark_of_exactly_200_characters_kept_R_TR_1(ab):
    admin, a, b = ab
    record = transfer(admin, a, b, "1.00", remark="r" * 200)
    assert TransferRecord.objects.get(pk=record.pk).remark == "r" * 200


def test_only_the_enterprise_administrator_transfers_R_TR_1_R_ORG_6(ent, ab):
    enterprise, ma, admin = ent
    _, a, b = ab
    member = make_user(account=a, role=User.Role.MEMBER)
    # A user with the admin role but not acting for the management account is not an administrator.
    not_ma = make_user(account=a, role=User.Role.ENTERPRISE_ADMIN)
    for actor in (member, not_ma, make_manager(), None):
        err = assert_refused(lambda: transfer(actor, a, b, "1.00"), messages.MSG_NOT_ADMIN)
        assert isinstance(err, PermissionDenied)
    transfer(admin, a, b, "10.00")
    for actor in (member, make_manager()):
        assert_refused(lambda: withdraw(actor, a, b, "1.00"), messages.MSG_NOT_ADMIN)


def test_administrator_of_another_enterprise_refused_R_TR_1_R_ORG_6(ab):
    _, a, b = ab
    other_ent, other_ma, other_admin = make_enterprise(name="Other")
    assert_refused(lambda: transfer(other_admin, a, b, "1.00"),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=a.account_id), rule="R-TR-1")
    own = fund(make_account(enterprise=other_ent), "50.00")
    assert_refused(lambda: transfer(other_admin, own, b, "1.00"),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=b.account_id), rule="R-TR-1")


def test_account_outside_any_directory_refused_R_TR_1(ab):
    admin, a, b = ab
    outsider = make_account(company_id=a.verified_company_id)
    assert_refused(lambda: transfer(admin, a, outsider, "1.00"),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=outsider.account_id))


@pytest.mark.parametrize("side", ["payer", "payee"])
def test_other_company_account_refused_R_ORG_5(ent, side):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    other = fund(make_account(enterprise=enterprise, company_id="91440000OTHER0001"), "100.00")
    payer, payee = (other, a) if side == "payer" else (a, other)
    assert_refused(lambda: transfer(admin, payer, payee, "1.00"),
                   messages.MSG_OTHER_COMPANY.format(account=other.account_id), rule="R-ORG-5")


def test_unverified_account_refused_R_ORG_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    unverified = make_account(enterprise=enterprise, company_id="")
    assert_refused(lambda: transfer(admin, a, unverified, "1.00"),
                   messages.MSG_OTHER_COMPANY.format(account=unverified.account_id), rule="R-ORG-5")


@pytest.mark.parametrize("flag, reason", [
    ("pay_on_behalf", "pay on behalf of an ecosystem partner"),
    ("risk_flag", "significant receivables with long-overdue history"),
])
@pytest.mark.parametrize("side", ["payer", "payee"])
def test_flagged_account_cannot_transfer_or_withdraw_R_CR_6(ab, flag, reason, side):
    admin, a, b = ab
    transfer(admin, a, b, "100.00")
    flagged = a if side == "payer" else b
    services.account_flags_set(actor=None, account=flagged, **{flag: True})
    message = messages.MSG_DISABLED.format(account=flagged.account_id, reason=reason)
    assert_refused(lambda: transfer(admin, a, b, "1.00"), message, rule="R-CR-6")
    assert_refused(lambda: withdraw(admin, a, b, "1.00"), message, rule="R-CR-6")


# --- R-TR-4: withdrawable amount = min(B's transfer book, remaining revocable, B's available credit) ---

def test_withdraw_refused_without_a_transfer_R_TR_4(ab):
    admin, a, b = ab
    assert selectors.withdrawable_amount(source=a, target=b) == D("0.00")
    err = assert_refused(lambda: withdraw(admin, a, b, "1.00"),
                         messages.MSG_NO_TRANSFER.format(source=a.account_id, target=b.account_id), rule="R-TR-4")
    assert err.field == "source"
    # The pair has a direction: B -> A never happened either after A -> B.
    transfer(admin, a, b, "10.00")
    assert_refused(lambda: withdraw(admin, b, a, "1.00"),
                   messages.MSG_NO_TRANSFER.format(source=b.account_id, target=a.account_id))


def test_withdrawable_bounded_by_remaining_revocable_R_TR_4(ent, ab):
    admin, a, b = ab
    c = fund(make_account(enterprise=ent[0]), "500.00")
    transfer(admin, a, b, "100.00")
    transfer(admin, c, b, "200.00")
    b.refresh_from_db()
    # B's transfer book 300.00 and available credit 300.00, but only 100.00 came from A.
    assert selectors.withdrawable_amount(source=a, target=b) == D("100.00")
    assert selectors.withdrawable_amount(source=c, target=b) == D("200.00")
    assert_refused(lambda: withdraw(admin, a, b, "100.01"),
                   messages.MSG_OVER_WITHDRAWABLE.format(limit="100.00", amount="100.01"), rule="R-TR-4")
    withdraw(admin, a, b, "100.00")
    assert figures(b)[1] == D("200.00")
    assert selectors.withdrawable_amount(source=a, target=b) == D("0.00")


def test_withdrawable_bounded_by_transfer_book_after_b_spent_R_TR_4(ab):
    """A's own money is never taken to cover what B spent: B spent 300.00 of the 500.00, 200.00 is left."""
    admin, a, b = ab
    transfer(admin, a, b, "500.00")
    spend(b, "300.00")
    assert figures(b) == (D("0.00"), D("200.00"), D("0.00"), D("0.00"))
    assert TransferPair.objects.get(source=a, target=b).remaining_revocable == D("500.00")
    assert selectors.withdrawable_amount(source=a, target=b) == D("200.00")
    assert_refused(lambda: withdraw(admin, a, b, "200.01"),
                   "Withdrawable amount is 200.00; you asked for 200.01 (R-TR-4).")
    withdraw(admin, a, b, "200.00")
    assert figures(a) == (D("700.00"), D("0.00"), D("0.00"), D("0.00"))
    assert figures(b) == (D("0.00"), D("0.00"), D("0.00"), D("0.00"))
    assert TransferPair.objects.get(source=a, target=b).remaining_revocable == D("300.00")


def test_withdrawable_bounded_by_b_available_credit_R_TR_4(ab):
    """B has an unpaid bill of 200.00 (not overdue): withdrawing more than 300.00 would leave it below 0."""
    admin, a, b = ab
    spend(b, "200.00")
    transfer(admin, a, b, "500.00")
    assert figures(b) == (D("0.00"), D("500.00"), D("0.00"), D("200.00"))
    assert b.available_credit == D("300.00")
    assert selectors.withdrawable_amount(source=a, target=b) == D("300.00")
    assert_refused(lambda: withdraw(admin, a, b, "300.01"),
                   "Withdrawable amount is 300.00; you asked for 300.01 (R-TR-4).")
    withdraw(admin, a, b, "300.00")
    b.refresh_from_db()
    assert b.available_credit == D("0.00")  # never negative, never overdue


def test_withdrawable_floored_at_zero_R_TR_4(ab):
    admin, a, b = ab
    spend(b, "300.00")
    transfer(admin, a, b, "100.00")
    b.refresh_from_db()
    assert b.available_credit == D("-200.00")
    assert selectors.withdrawable_amount(source=a, target=b) == D("0.00")
    assert_refused(lambda: withdraw(admin, a, b, "0.01"), "Withdrawable amount is 0.00; you asked for 0.01 (R-TR-4).")


def test_withdrawal_sources_are_the_accounts_with_something_revocable_R_TR_4(ent, ab):
    admin, a, b = ab
    c = fund(make_account(enterprise=ent[0]), "100.00")
    transfer(admin, a, b, "50.00")
    transfer(admin, c, b, "20.00")
    assert set(selectors.withdrawal_sources(b)) == {a, c}
    withdraw(admin, c, b, "20.00")
    assert list(selectors.withdrawal_sources(b)) == [a]
    assert list(selectors.withdrawal_targets(a)) == [b]


# --- R-TR-5: effect of a withdrawal ---

def test_withdrawal_effect_on_balances_pair_record_and_ledger_R_TR_5(ab):
    admin, a, b = ab
    transfer(admin, a, b, "400.00")
    record = withdraw(admin, a, b, "150.00", remark="unused budget")
    assert figures(a) == (D("750.00"), D("0.00"), D("0.00"), D("0.00"))
    assert figures(b) == (D("0.00"), D("250.00"), D("0.00"), D("0.00"))
    assert TransferPair.objects.get(source=a, target=b).remaining_revocable == D("250.00")
    # The record's payer is the account the money leaves (B), its payee the source (A).
    assert (record.kind, record.payer, record.payee, record.amount, record.remark) == (
        TransferRecord.Kind.WITHDRAWAL, b, a, D("150.00"), "unused budget")
    assert TransferRecord.objects.filter(kind=TransferRecord.Kind.WITHDRAWAL).count() == 1
    assert record.operation.kind == Operation.Kind.WITHDRAWAL and record.operation.external_amount == 0
    assert ledger_rows(record.operation) == {(b.pk, "transfer_book", D("-150.00")), (a.pk, "own_cash", D("150.00"))}
    assert ledger_differences() == []


def test_withdrawal_allowed_while_source_is_overdue_R_TR_5(ab):
    """Only the transfer's payer must have no overdue amount (R-TR-2); a withdrawal brings money back."""
    admin, a, b = ab
    transfer(admin, a, b, "1000.00")
    spend(a, "300.00")
    make_overdue(a)
    withdraw(admin, a, b, "400.00")
    assert figures(a) == (D("400.00"), D("0.00"), D("0.00"), D("300.00"))


# --- R-TR-6: transfer records ---

def test_transfer_records_every_in_and_out_newest_first_filterable_R_TR_6(ent, ab):
    admin, a, b = ab
    c = fund(make_account(enterprise=ent[0]), "100.00")
    t1 = transfer(admin, a, b, "10.00")
    t2 = transfer(admin, c, a, "20.00")
    w1 = withdraw(admin, a, b, "5.00")
    unrelated = transfer(admin, c, b, "1.00")
    assert list(selectors.transfer_records(a)) == [w1, t2, t1]
    assert unrelated not in selectors.transfer_records(a)
    assert list(selectors.transfer_records(a, kind="transfer")) == [t2, t1]
    assert list(selectors.transfer_records(a, kind="withdrawal")) == [w1]
    # Date filter: move t1 two days back.
    TransferRecord.objects.filter(pk=t1.pk).update(created_at=timezone.now() - timedelta(days=2))
    today = timezone.localdate()
    assert list(selectors.transfer_records(a, date_from=today)) == [w1, t2]
    assert list(selectors.transfer_records(a, date_to=today - timedelta(days=1))) == [t1]
    record = selectors.transfer_records(a)[0]
    assert (record.payer, record.payee, record.actor, record.amount) == (b, a, admin, D("5.00"))
    assert set(selectors.enterprise_transfer_records(ent[0])) == {t1, t2, w1, unrelated}


# --- R-TR-8: figures re-checked inside the operation's transaction ---

def test_transfer_rechecks_the_shown_amount_R_TR_8(ab):
    admin, a, b = ab
    shown = selectors.transferable_amount(a)
    assert shown == D("1000.00")
    spend(a, "300.00")  # meanwhile, usage is charged
    assert_refused(lambda: transfer(admin, a, b, shown),
                   "Transferable amount is 700.00; you asked for 1,000.00 (R-TR-2).")


def test_withdrawal_rechecks_the_shown_amount_R_TR_8(ab):
    admin, a, b = ab
    transfer(admin, a, b, "400.00")
    b.refresh_from_db()
    shown = selectors.withdrawable_amount(source=a, target=b)
    assert shown == D("400.00")
    spend(b, "150.00")
    assert_refused(lambda: withdraw(admin, a, b, shown),
                   "Withdrawable amount is 250.00; you asked for 400.00 (R-TR-4).")


def test_stale_account_objects_do_not_fool_the_checks_R_TR_8(ab):
    """The service reads locked rows, not the caller's in-memory objects."""
    admin, a, b = ab
    stale_a = type(a).objects.get(pk=a.pk)
    spend(a, "999.00")
    assert stale_a.own_cash == D("1000.00")
    assert_refused(lambda: transfer(admin, stale_a, b, "500.00"),
                   "Transferable amount is 1.00; you asked for 500.00 (R-TR-2).")


def test_amount_given_as_decimal_or_text_moves_the_same_money_R_MON_1(ab):
    admin, a, b = ab
    transfer(admin, a, b, Decimal("1.5"))
    transfer(admin, a, b, "1,000.00".replace("1,000", "2"))
    assert figures(b)[1] == D("3.50")
