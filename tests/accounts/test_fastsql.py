"""The set-based transfer path (accounts.fastsql) reads what the rules need after it holds the locks (R-TR-8).

A transfer that waited for another operation's lock on its payer must see what that operation committed:
not only the account's balances (the locked row) but its bills and pairs too. Were those read in the
locking statement itself, PostgreSQL would return them as of the statement's start, before the wait.
"""

import threading
import time

import pytest

from core.errors import DomainError
from django.db import connection, transaction

from accounts import services
from accounts import messages
from accounts.models import TransferPair
from tests.books import D, figures, make_overdue
from tests.factories import fund, make_account, make_enterprise, spend


def _hold_then_commit(work, seconds=0.5):
    """Run ``work()`` in a transaction in another thread and commit ``seconds`` after it finished."""
    done = threading.Event()
    errors = []

    def run():
        try:
            with transaction.atomic():
                work()
                done.set()
                time.sleep(seconds)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert done.wait(20)
    return thread, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_transfer_waiting_for_a_top_up_sees_the_overdue_bill_it_paid_R_TR_2_R_TR_8():
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    services.transfer_create(actor=admin, payer=a, payee=b, amount="1000.00", remark="all")
    spend(a, "300.00")
    make_overdue(a)
    # A top-up pays the overdue bill and holds A's row lock a moment longer; the transfer waits for it.
    thread, errors = _hold_then_commit(lambda: services.top_up(actor=None, account=a, amount="500.00"))
    record = services.transfer_create(actor=admin, payer=a, payee=b, amount="100.00", remark="after top-up")
    thread.join(30)
    assert errors == []
    assert record.amount == D("100.00")
    assert figures(a) == (D("100.00"), D("0.00"), D("0.00"), D("0.00"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_withdrawal_waiting_for_another_withdrawal_sees_the_pair_it_drew_down_R_TR_4_R_TR_8():
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    c = fund(make_account(enterprise=enterprise), "1000.00")
    services.transfer_create(actor=admin, payer=a, payee=b, amount="100.00", remark="budget")
    services.transfer_create(actor=admin, payer=c, payee=b, amount="200.00", remark="budget")  # B's book is no bound
    thread, errors = _hold_then_commit(
        lambda: services.withdrawal_create(actor=admin, source=a, target=b, amount="70.00", remark="first"))
    # Only 30.00 is left to withdraw once the first withdrawal commits: refused with that figure.
    with pytest.raises(DomainError) as info:
        services.withdrawal_create(actor=admin, source=a, target=b, amount="50.00", remark="second")
    thread.join(30)
    assert errors == []
    assert info.value.message == messages.MSG_OVER_WITHDRAWABLE.format(limit="30.00", amount="50.00")
    assert TransferPair.objects.get(source=a, target=b).remaining_revocable == D("30.00")
