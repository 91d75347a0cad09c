"""Balances, charges, top-ups and the ledger (SPEC section 2, R-MON-2 to R-MON-6) with worked figures."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import selectors, services
from accounts import messages
from accounts.ledger import ledger_differences
from accounts.models import Account, Bill, Charge, LedgerEntry, Operation, TopUp
from core import money
from tests.books import D, assert_refused, figures, ledger_rows, make_overdue
from tests.factories import effective_contract, fund, make_account, make_manager, make_user, spend


def transfer(admin, a, b, amount):
    return services.transfer_create(actor=admin, payer=a, payee=b, amount=amount, remark="budget")


# --- R-MON-3: shown figures ---

def test_cash_balance_and_available_credit_R_MON_3(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = fund(make_account(enterprise=enterprise), "300.00")
    b = fund(make_account(enterprise=enterprise), "100.00")
    transfer(admin, b, a, "40.00")
    services.credit_limit_set(actor=admin, account=a, new_limit="500.00")
    spend(a, "20.00")  # from the transfer book
    a.refresh_from_db()
    # own cash 300.00 + transfer book 20.00 = cash 320.00; + limit 500.00 - outstanding 0.00 = 820.00
    assert (a.cash_balance, a.available_credit) == (D("320.00"), D("820.00"))
    row = selectors.with_figures(Account.objects.filter(pk=a.pk)).get()
    assert (row.cash_balance_value, row.available_credit_value, row.overdue_amount) == (
        D("320.00"), D("820.00"), D("0.00"))


def test_overdue_is_the_unpaid_part_of_bills_past_due_R_MON_2(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    spend(a, "100.00")
    spend(a, "50.00")
    assert selectors.overdue_amount(a) == D("0.00")
    first = a.bills.order_by("id").first()
    Bill.objects.filter(pk=first.pk).update(due_date=timezone.localdate() - timedelta(days=1))
    assert selectors.overdue_amount(a) == D("100.00")
    fund(a, "30.00")  # pays 30.00 of the oldest bill
    assert selectors.overdue_amount(a) == D("70.00")
    assert figures(a)[3] == D("120.00")
    row = selectors.with_figures(Account.objects.filter(pk=a.pk)).get()
    assert row.overdue_amount == D("70.00")


# --- R-MON-5: a charge spends the transfer book, then own cash, then becomes a bill ---

def test_charge_consumes_transfer_book_then_own_cash_then_bill_R_MON_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = fund(make_account(enterprise=enterprise), "300.00")
    transfer(admin, b, a, "60.00")
    record = services.charge(actor=None, account=a, amount="250.00", description="ECS usage")
    assert (record.from_transfer_book, record.from_own_cash, record.billed) == (D("60.00"), D("100.00"), D("90.00"))
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("90.00"))
    bill = Bill.objects.get(account=a)
    assert (bill.amount, bill.unpaid_amount, bill.operation) == (D("90.00"), D("90.00"), record.operation)
    assert bill.due_date == timezone.localdate() + timedelta(days=15)
    assert record.operation.external_amount == D("-250.00")
    assert ledger_rows(record.operation) == {
        (a.pk, "transfer_book", D("-60.00")), (a.pk, "own_cash", D("-100.00")), (a.pk, "outstanding", D("90.00"))}
    assert ledger_differences() == []


def test_charge_covered_by_transfer_book_alone_leaves_own_cash_R_MON_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = fund(make_account(enterprise=enterprise), "300.00")
    transfer(admin, b, a, "60.00")
    record = services.charge(actor=None, account=a, amount="60.00")
    assert (record.from_transfer_book, record.from_own_cash, record.billed) == (D("60.00"), D("0.00"), D("0.00"))
    assert figures(a) == (D("100.00"), D("0.00"), D("0.00"), D("0.00"))
    assert not Bill.objects.filter(account=a).exists()
    assert ledger_rows(record.operation) == {(a.pk, "transfer_book", D("-60.00"))}


def test_charge_exactly_equal_to_cash_makes_no_bill_one_cent_more_does_R_MON_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    spend(a, "100.00")
    assert not Bill.objects.exists()
    spend(a, "0.01")
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("0.01"))
    assert Bill.objects.get().amount == D("0.01")


def test_charge_spends_credit_as_a_bill_R_MON_5(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = fund(make_account(enterprise=enterprise), "10.00")
    services.credit_limit_set(actor=admin, account=a, new_limit="500.00")
    spend(a, "200.00")
    a.refresh_from_db()
    assert figures(a) == (D("0.00"), D("0.00"), D("500.00"), D("190.00"))
    assert a.available_credit == D("310.00")


def test_charge_amount_rules_and_back_office_only_R_MON_1_R_ORG_6(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "10.00")
    assert_refused(lambda: services.charge(actor=None, account=a, amount="0"), money.MSG_AMOUNT_POSITIVE)
    assert_refused(lambda: services.charge(actor=None, account=a, amount="1.234"), money.MSG_AMOUNT_DECIMALS)
    for actor in (admin, make_user(account=a)):
        assert_refused(lambda: services.charge(actor=actor, account=a, amount="1.00"),
                       messages.MSG_NOT_ACCOUNT_MANAGER)
        assert_refused(lambda: services.top_up(actor=actor, account=a, amount="1.00"),
                       messages.MSG_NOT_ACCOUNT_MANAGER)


# --- R-MON-6: a top-up pays unpaid bills oldest first, then adds to own cash ---

def test_top_up_pays_bills_oldest_first_then_own_cash_R_MON_6(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    spend(a, "100.00", at=timezone.now() - timedelta(days=2))
    spend(a, "50.00", at=timezone.now() - timedelta(days=1))
    spend(a, "30.00")
    old, middle, new = a.bills.order_by("created_at")
    record = services.top_up(actor=make_manager(), account=a, amount="120.00")
    assert (record.paid_bills, record.to_own_cash) == (D("120.00"), D("0.00"))
    old.refresh_from_db(); middle.refresh_from_db(); new.refresh_from_db()
    assert (old.unpaid_amount, middle.unpaid_amount, new.unpaid_amount) == (D("0.00"), D("30.00"), D("30.00"))
    assert old.paid_at is not None and middle.paid_at is None
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("60.00"))
    assert ledger_rows(record.operation) == {(a.pk, "outstanding", D("-120.00"))}
    # The next top-up pays the rest, the remainder goes to own cash.
    record = services.top_up(actor=None, account=a, amount="100.00")
    assert (record.paid_bills, record.to_own_cash) == (D("60.00"), D("40.00"))
    assert figures(a) == (D("40.00"), D("0.00"), D("0.00"), D("0.00"))
    assert ledger_rows(record.operation) == {(a.pk, "outstanding", D("-60.00")), (a.pk, "own_cash", D("40.00"))}
    assert record.operation.external_amount == D("100.00")
    assert not Bill.objects.filter(unpaid_amount__gt=0).exists()
    assert ledger_differences() == []


def test_top_up_exactly_the_outstanding_leaves_nothing_in_own_cash_R_MON_6(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    spend(a, "75.50")
    make_overdue(a)
    fund(a, "75.50")
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("0.00"))
    assert selectors.overdue_amount(a) == D("0.00")
    record = TopUp.objects.latest("id")
    assert (record.paid_bills, record.to_own_cash) == (D("75.50"), D("0.00"))


def test_top_up_without_bills_goes_to_own_cash_not_transfer_book_R_MON_6(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    record = services.top_up(actor=None, account=a, amount="1,250.00")
    assert (record.amount, record.paid_bills, record.to_own_cash) == (D("1250.00"), D("0.00"), D("1250.00"))
    assert figures(a) == (D("1250.00"), D("0.00"), D("0.00"), D("0.00"))


# --- R-MON-4: the append-only ledger and its check ---

def test_every_balance_equals_its_ledger_sum_after_a_day_of_operations_R_MON_4(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "5000.00")
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    transfer(admin, a, b, "300.00")
    spend(b, "500.00")
    services.credit_limit_set(actor=admin, account=b, new_limit="1000.00")
    fund(b, "50.00")
    for account in (a, b):
        account.refresh_from_db()
        for bucket, field in LedgerEntry.BUCKET_FIELDS.items():
            total = sum(LedgerEntry.objects.filter(account=account, bucket=bucket).values_list("amount", flat=True),
                        D("0.00"))
            assert getattr(account, field) == total
    assert ledger_differences() == []
    out = StringIO()
    call_command("check_ledger", stdout=out)
    assert "Ledger clean" in out.getvalue()


def test_ledger_rows_are_append_only_R_MON_4(ent):
    enterprise, ma, admin = ent
    fund(make_account(enterprise=enterprise), "10.00")
    entry = LedgerEntry.objects.get()
    entry.amount = D("99.00")
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    assert LedgerEntry.objects.get().amount == D("10.00")


def test_ledger_rows_record_operation_actor_and_time_R_MON_4(ent):
    enterprise, ma, admin = ent
    manager = make_manager()
    a = make_account(enterprise=enterprise)
    record = services.top_up(actor=manager, account=a, amount="10.00", description="bank transfer 42")
    entry = LedgerEntry.objects.get(account=a)
    assert (entry.operation, entry.operation.actor, entry.operation.kind) == (record.operation, manager, "top_up")
    assert entry.created_at == record.created_at
    assert entry.operation.description == "bank transfer 42"


def test_check_ledger_fails_and_lists_a_tampered_balance_R_MON_4(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    spend(a, "130.00")
    Account.objects.filter(pk=a.pk).update(own_cash=D("5.00"))
    err, out = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("check_ledger", stdout=out, stderr=err)
    assert "1 difference(s)" in str(info.value)
    assert f"account {a.account_id}: own_cash is 5.00 but its ledger sums to 0.00" in err.getvalue()


def test_check_ledger_finds_bills_and_unbalanced_operations_R_MON_4(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    spend(a, "40.00")
    Bill.objects.filter(account=a).update(unpaid_amount=D("10.00"))
    problems = ledger_differences()
    assert problems == [f"account {a.account_id}: outstanding balance is 40.00 but its unpaid bills sum to 10.00"]
    Bill.objects.filter(account=a).update(unpaid_amount=D("40.00"))
    Operation.objects.filter(kind="charge").update(external_amount=D("-41.00"))
    problems = ledger_differences()
    assert len(problems) == 1 and "balances moved -40.00 but it records -41.00" in problems[0]


def test_check_ledger_exits_non_zero_from_the_command_line_R_MON_4(ent, tmp_path):
    """``manage.py check_ledger`` ends with status 1 on a difference (CommandError's exit code)."""
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    Account.objects.filter(pk=a.pk).update(transfer_book_balance=D("1.00"))
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as info:
        ManagementUtility(["manage.py", "check_ledger"]).execute()
    assert info.value.code == 1


def test_charge_parts_and_records_sum_to_the_whole_R_MON_1(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "33.33")
    for amount in ("10.01", "10.01", "10.01", "10.01"):
        spend(a, amount)
    for record in Charge.objects.all():
        assert record.from_transfer_book + record.from_own_cash + record.billed == record.amount
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("6.71"))
