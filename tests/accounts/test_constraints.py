"""The database holds what it can (issue 2, item 4): writes that bypass the services hit CHECK and UNIQUE
constraints and raise IntegrityError (R-MON-2, R-TR-3, R-ORG-2, R-ORG-3, R-CR-1)."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import selectors, services
from accounts.models import (
    Account,
    Bill,
    Charge,
    CreditChangeRecord,
    CreditContract,
    Folder,
    LedgerEntry,
    Operation,
    TopUp,
    TransferPair,
    TransferRecord,
)
from core.models import IdempotencyKey, Notification
from tests.factories import fund, make_account, make_enterprise, spend

D = Decimal


def refused_by_database(fn):
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            fn()


@pytest.fixture
def funded(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = make_account(enterprise=enterprise)
    record = services.transfer_create(actor=admin, payer=a, payee=b, amount="40.00", remark="x")
    return enterprise, admin, a, b, record


@pytest.mark.parametrize("field", ["own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance",
                                   "alert_threshold"])
def test_balances_cannot_be_negative_R_MON_2(funded, field):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: Account.objects.filter(pk=a.pk).update(**{field: D("-0.01")}))
    Account.objects.filter(pk=a.pk).update(**{field: D("0.00")})  # zero is allowed


def test_one_management_account_per_enterprise_R_ORG_2(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: Account.objects.filter(pk=a.pk).update(is_management=True))
    refused_by_database(lambda: make_account(enterprise=enterprise, is_management=True))


def test_management_account_and_folder_need_an_enterprise_R_ORG_2_R_ORG_3(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: Account.objects.filter(pk=a.pk).update(enterprise=None))  # still has a folder
    refused_by_database(lambda: Account.objects.filter(pk=admin.account_id).update(enterprise=None, folder=None))


def test_account_id_unique(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: Account.objects.filter(pk=b.pk).update(account_id=a.account_id))


def test_transfer_amount_positive_R_TR_2(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: TransferRecord.objects.filter(pk=record.pk).update(amount=D("0.00")))
    refused_by_database(lambda: TransferRecord.objects.filter(pk=record.pk).update(amount=D("-1.00")))


def test_transfer_between_different_accounts_R_TR_1(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: TransferRecord.objects.filter(pk=record.pk).update(payee=a))
    refused_by_database(lambda: TransferPair.objects.filter(source=a).update(target=a))


def test_transfer_remark_not_empty_R_TR_1(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: TransferRecord.objects.filter(pk=record.pk).update(remark=""))


def test_remaining_revocable_not_negative_and_one_pair_per_direction_R_TR_4(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: TransferPair.objects.filter(source=a, target=b).update(
        remaining_revocable=D("-0.01")))
    refused_by_database(lambda: TransferPair.objects.create(source=a, target=b))


def test_bill_unpaid_between_zero_and_amount_R_MON_5(funded):
    enterprise, admin, a, b, record = funded
    spend(b, "100.00")  # 40.00 from the transfer book, a bill of 60.00
    bill = Bill.objects.get(account=b)
    refused_by_database(lambda: Bill.objects.filter(pk=bill.pk).update(unpaid_amount=D("60.01")))
    refused_by_database(lambda: Bill.objects.filter(pk=bill.pk).update(unpaid_amount=D("-0.01")))
    refused_by_database(lambda: Bill.objects.filter(pk=bill.pk).update(amount=D("0.00"), unpaid_amount=D("0.00")))
    Bill.objects.filter(pk=bill.pk).update(unpaid_amount=D("60.00"))


def test_charge_parts_sum_to_the_amount_R_MON_1_R_MON_5(funded):
    enterprise, admin, a, b, record = funded
    charge = services.charge(actor=None, account=a, amount="10.00")
    refused_by_database(lambda: Charge.objects.filter(pk=charge.pk).update(billed=D("0.01")))
    refused_by_database(lambda: Charge.objects.filter(pk=charge.pk).update(amount=D("0.00"), from_own_cash=D("0.00")))


def test_top_up_parts_sum_to_the_amount_R_MON_6(funded):
    enterprise, admin, a, b, record = funded
    top_up = TopUp.objects.filter(account=a).first()
    refused_by_database(lambda: TopUp.objects.filter(pk=top_up.pk).update(paid_bills=D("1.00")))
    refused_by_database(lambda: TopUp.objects.filter(pk=top_up.pk).update(amount=D("0.00"), to_own_cash=D("0.00")))


def test_ledger_entry_amount_not_zero_R_MON_4(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: LedgerEntry.objects.filter(account=a).update(amount=D("0.00")))


def test_folder_name_unique_among_siblings_R_ORG_3(funded):
    enterprise, admin, a, b, record = funded
    root = selectors.root_folder(enterprise)
    sales = services.folder_create(actor=admin, parent=root, name="Sales")
    hr = services.folder_create(actor=admin, parent=root, name="HR")
    refused_by_database(lambda: Folder.objects.filter(pk=hr.pk).update(name="Sales"))
    refused_by_database(lambda: Folder.objects.create(enterprise=enterprise, parent=root, name="Sales", depth=1))
    assert Folder.objects.filter(parent=root, name="Sales").get() == sales


def test_folder_depth_at_most_five_and_name_not_empty_R_ORG_3(funded):
    enterprise, admin, a, b, record = funded
    root = selectors.root_folder(enterprise)
    sales = services.folder_create(actor=admin, parent=root, name="Sales")
    refused_by_database(lambda: Folder.objects.filter(pk=sales.pk).update(depth=6))
    refused_by_database(lambda: Folder.objects.filter(pk=sales.pk).update(name=""))
    refused_by_database(lambda: Folder.objects.filter(pk=sales.pk).update(depth=0))  # only the root has depth 0
    Folder.objects.filter(pk=sales.pk).update(depth=5)


def test_one_root_folder_per_enterprise_R_ORG_3(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: Folder.objects.create(enterprise=enterprise, parent=None, name="Root 2", depth=0))


def test_credit_contract_constraints_R_CR_1(funded):
    enterprise, admin, a, b, record = funded
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="100.00")
    refused_by_database(lambda: CreditContract.objects.filter(pk=contract.pk).update(total_credit_limit=D("-1")))
    # Effective if and only if confirmed.
    refused_by_database(lambda: CreditContract.objects.filter(pk=contract.pk).update(status="effective"))
    refused_by_database(lambda: CreditContract.objects.filter(pk=contract.pk).update(confirmed_at=timezone.now()))
    # One contract per enterprise.
    refused_by_database(lambda: CreditContract.objects.create(
        enterprise=enterprise, contract_number="CC-2", total_credit_limit=D("1"), created_at=timezone.now(),
        updated_at=timezone.now()))


def test_credit_change_values_not_negative_R_CR_7(funded):
    enterprise, admin, a, b, record = funded
    refused_by_database(lambda: CreditChangeRecord.objects.create(
        enterprise=enterprise, old_value=D("0"), new_value=D("-1"), created_at=timezone.now()))


def test_enterprise_company_id_unique_and_not_empty_R_ORG_1(funded):
    enterprise, admin, a, b, record = funded
    other = make_enterprise(name="Other")[0]
    refused_by_database(lambda: type(enterprise).objects.filter(pk=other.pk).update(company_id=enterprise.company_id))
    refused_by_database(lambda: type(enterprise).objects.filter(pk=other.pk).update(company_id=""))


def test_idempotency_key_unique_R_TR_7(db):
    IdempotencyKey.objects.create(key="k1", operation="top_up", request_fingerprint="f", created_at=timezone.now())
    refused_by_database(lambda: IdempotencyKey.objects.create(key="k1", operation="charge", request_fingerprint="g",
                                                              created_at=timezone.now()))


def test_notification_needs_a_recipient_R_NT_1(db):
    refused_by_database(lambda: Notification.objects.create(channel="sms", recipient="", subject="s", body="b",
                                                            kind="k", created_at=timezone.now()))


def test_operation_of_a_one_to_one_record_used_once(funded):
    enterprise, admin, a, b, record = funded
    operation = Operation.objects.filter(kind="top_up").first()
    refused_by_database(lambda: TopUp.objects.create(account=a, operation=operation, amount=D("1"),
                                                     to_own_cash=D("1"), created_at=timezone.now()))
