from decimal import Decimal

from accounts import selectors, services
from tests.factories import fund, make_account


def test_transfer_then_withdraw_moves_money_R_TR_3_R_TR_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    services.transfer_create(actor=admin, payer=a, payee=b, amount="400.00", remark="budget")
    a.refresh_from_db(); b.refresh_from_db()
    assert (a.own_cash, b.transfer_book_balance) == (Decimal("600.00"), Decimal("400.00"))
    assert selectors.withdrawable_amount(source=a, target=b) == Decimal("400.00")
    services.withdrawal_create(actor=admin, source=a, target=b, amount="150.00", remark="back")
    a.refresh_from_db(); b.refresh_from_db()
    assert (a.own_cash, b.transfer_book_balance) == (Decimal("750.00"), Decimal("250.00"))


def test_check_ledger_clean_after_operations_R_MON_4(ent):
    from django.core.management import call_command

    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    services.charge(actor=None, account=a, amount="130.00", description="usage")
    call_command("check_ledger")
