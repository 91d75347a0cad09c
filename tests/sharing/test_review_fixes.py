"""Regressions found in review: re-verification ends cross-company grants (R-SH-5), a share and a move into its
folder cannot miss each other (R-SH-2), removal keeps transferred money withdrawable (R-TR-4), reminders stop for
good once overdue (R-AL-5)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Bill, Folder
from core.errors import DomainError, PermissionDenied
from sharing import services
from sharing.models import AssetType, Grant, ScopeType
from tests.factories import fund, make_account, make_enterprise, make_manager, spend


def _coupon(owner, *, name="Review coupon"):
    now = timezone.now()
    return services.asset_provision(actor=None, owner=owner, asset_type=AssetType.COUPON, name=name,
                                    valid_from=now - timedelta(days=1), valid_to=now + timedelta(days=30),
                                    face_value="50.00", products=[])


def test_reverifying_a_recipient_as_another_company_ends_its_grants_R_SH_5(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise, name="B")
    coupon = _coupon(ma)
    services.share_asset(actor=admin, asset=coupon, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    assert Grant.objects.filter(asset=coupon, account=b, effective_to__isnull=True).exists()
    account_services.account_flags_set(actor=make_manager(), account=b, verified_company_id="OTHER-COMPANY-123")
    assert not Grant.objects.filter(asset=coupon, account=b, effective_to__isnull=True).exists()
    assert Grant.objects.get(asset=coupon, account=b).effective_to is not None


def test_reverifying_an_owner_as_another_company_ends_the_grants_of_its_assets_R_SH_5(ent):
    enterprise, ma, admin = ent
    owner = make_account(enterprise=enterprise, name="Owner")
    b = make_account(enterprise=enterprise, name="B")
    coupon = _coupon(owner)
    services.share_asset(actor=admin, asset=coupon, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    account_services.account_flags_set(actor=make_manager(), account=owner, verified_company_id="SPUN-OFF-1")
    assert not Grant.objects.filter(asset=coupon, effective_to__isnull=True).exists()


def test_reverifying_with_the_same_company_keeps_grants_R_SH_5(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise, name="B")
    coupon = _coupon(ma)
    services.share_asset(actor=admin, asset=coupon, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    account_services.account_flags_set(actor=make_manager(), account=b, risk_flag=True)
    assert Grant.objects.filter(asset=coupon, account=b, effective_to__isnull=True).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_share_with_folder_and_move_into_it_concurrently_always_grants_R_SH_2():
    """A move into a folder racing a share with that folder: whichever commits first, the account ends with a grant."""
    enterprise, ma, admin = make_enterprise(name="Racers")
    root = Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    ops = account_services.folder_create(actor=admin, parent=root, name="Ops")
    make_account(enterprise=enterprise, folder=ops, name="Already in Ops")
    for round_no in range(6):
        b = make_account(enterprise=enterprise, name=f"Mover {round_no}")
        coupon = _coupon(ma, name=f"Race coupon {round_no}")
        barrier = threading.Barrier(2)
        errors = []

        def share():
            try:
                barrier.wait()
                services.share_asset(actor=admin, asset=coupon, scope_type=ScopeType.FOLDERS, folders=[ops])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        def move():
            try:
                barrier.wait()
                account_services.accounts_move(actor=admin, accounts=[b], folder=ops)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=share), threading.Thread(target=move)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        b.refresh_from_db()
        assert b.folder_id == ops.pk
        assert Grant.objects.filter(asset=coupon, account=b, effective_to__isnull=True).exists(), round_no


def test_removing_an_account_with_a_transfer_book_balance_is_refused_R_TR_4(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="A"), "100.00")
    b = make_account(enterprise=enterprise, name="B")
    account_services.transfer_create(actor=admin, payer=a, payee=b, amount="40.00", remark="budget")
    with pytest.raises(DomainError) as refused:
        account_services.account_remove(actor=admin, account=b)
    assert "transfer book balance of 40.00" in refused.value.message
    b.refresh_from_db()
    assert b.enterprise_id == enterprise.pk


def test_removing_an_account_outside_any_directory_is_refused_not_a_crash_R_ORG_6(ent):
    enterprise, ma, admin = ent
    loose = make_account(name="Not in a directory")
    with pytest.raises(PermissionDenied):
        account_services.account_remove(actor=admin, account=loose)


def test_reminders_stop_for_good_once_overdue_even_after_the_overdue_is_paid_R_AL_5(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="A"), "100.00")
    account_services.alert_set(actor=admin, account=a, enabled=True, threshold="1000.00")
    spend(a, "150.00")  # below the threshold: the alert goes out; 50.00 billed
    now = timezone.now()
    assert account_services.send_alert_reminders(now=now + timedelta(days=1)) == 1
    Bill.objects.filter(account=a).update(due_date=timezone.localdate(now) - timedelta(days=1))  # now overdue
    assert account_services.send_alert_reminders(now=now + timedelta(days=2)) == 0
    account_services.top_up(actor=None, account=a, amount=Decimal("50.00"))  # pays the bill; still below 1,000.00
    a.refresh_from_db()
    assert a.available_credit < a.alert_threshold
    assert account_services.send_alert_reminders(now=now + timedelta(days=3)) == 0
