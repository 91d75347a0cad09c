"""Idempotency keys (R-TR-7): a repeated key returns the first result and moves money once."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts import services
from core.idempotency import MSG_IDEMPOTENCY_MISMATCH
from accounts import messages
from accounts.ledger import ledger_differences
from accounts.models import Account, Charge, LedgerEntry, TopUp, TransferRecord
from core.models import IdempotencyKey
from tests.books import D, assert_refused, books, figures
from tests.factories import effective_contract, fund, make_account, make_enterprise


@pytest.fixture
def ab(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="A"), "1000.00")
    b = make_account(enterprise=enterprise, name="B")
    return admin, a, b


def test_transfer_twice_with_one_key_moves_money_once_R_TR_7(ab):
    admin, a, b = ab
    first = services.transfer_create(actor=admin, payer=a, payee=b, amount="400.00", remark="x",
                                     idempotency_key="form-1")
    before = books()
    second = services.transfer_create(actor=admin, payer=a, payee=b, amount="400.00", remark="x",
                                      idempotency_key="form-1")
    assert second.pk == first.pk
    assert books() == before
    assert figures(a)[0] == D("600.00") and figures(b)[1] == D("400.00")
    # A new key is a new request.
    services.transfer_create(actor=admin, payer=a, payee=b, amount="400.00", remark="x", idempotency_key="form-2")
    assert figures(a)[0] == D("200.00")


@pytest.mark.parametrize("call", [
    lambda admin, a, b, key: services.top_up(actor=None, account=a, amount="10.00", idempotency_key=key),
    lambda admin, a, b, key: services.charge(actor=None, account=a, amount="10.00", idempotency_key=key),
    lambda admin, a, b, key: services.withdrawal_create(actor=admin, source=a, target=b, amount="10.00", remark="x",
                                                       idempotency_key=key),
], ids=["top_up", "charge", "withdrawal"])
def test_every_money_operation_is_idempotent_R_TR_7(ab, call):
    admin, a, b = ab
    services.transfer_create(actor=admin, payer=a, payee=b, amount="100.00", remark="x")
    first = call(admin, a, b, "k")
    before = books()
    again = call(admin, a, b, "k")
    assert (type(again), again.pk) == (type(first), first.pk)
    assert books() == before


def test_credit_limit_set_is_idempotent_R_TR_7(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "1000.00")
    a = make_account(enterprise=enterprise)
    first = services.credit_limit_set(actor=admin, account=a, new_limit="100.00", idempotency_key="c1")
    # Without the key the repeat would be refused as unchanged; with it, it is the first result.
    again = services.credit_limit_set(actor=admin, account=a, new_limit="100.00", idempotency_key="c1")
    assert again.pk == first.pk


def test_same_key_different_parameters_refused_R_TR_7(ab):
    admin, a, b = ab
    services.transfer_create(actor=admin, payer=a, payee=b, amount="400.00", remark="x", idempotency_key="k")
    for kwargs in ({"amount": "400.01"}, {"remark": "y"}):
        params = {"amount": "400.00", "remark": "x", **kwargs}
        err = assert_refused(lambda: services.transfer_create(actor=admin, payer=a, payee=b, idempotency_key="k",
                                                              **params),
                             MSG_IDEMPOTENCY_MISMATCH)
        assert err.code == "idempotency_mismatch"
    # The same key for another operation is refused too.
    assert_refused(lambda: services.charge(actor=None, account=a, amount="400.00", idempotency_key="k"),
                   MSG_IDEMPOTENCY_MISMATCH)


def test_same_amount_written_differently_is_the_same_request_R_TR_7(ab):
    admin, a, b = ab
    first = services.transfer_create(actor=admin, payer=a, payee=b, amount="1,000.00", remark="x",
                                     idempotency_key="k")
    again = services.transfer_create(actor=admin, payer=a, payee=b, amount=D("1000"), remark="x",
                                     idempotency_key="k")
    assert again.pk == first.pk
    assert figures(a)[0] == D("0.00")


def test_refused_operation_does_not_keep_its_key_R_TR_7(ab):
    """A refusal changes nothing, the key included: the same request can succeed once its cause is fixed."""
    admin, a, b = ab
    assert_refused(lambda: services.transfer_create(actor=admin, payer=a, payee=b, amount="1500.00", remark="x",
                                                    idempotency_key="k"),
                   "Transferable amount is 1,000.00; you asked for 1,500.00 (R-TR-2).")
    fund(a, "500.00")
    record = services.transfer_create(actor=admin, payer=a, payee=b, amount="1500.00", remark="x",
                                      idempotency_key="k")
    assert record.amount == D("1500.00")


def test_key_of_another_enterprise_administrator_does_not_replay_its_result(ab):
    """The actor is part of the request: another user reusing a key is refused, never shown the record."""
    admin, a, b = ab
    services.transfer_create(actor=admin, payer=a, payee=b, amount="1.00", remark="x", idempotency_key="k")
    other_admin = make_enterprise(name="Other")[2]
    assert_refused(lambda: services.transfer_create(actor=other_admin, payer=a, payee=b, amount="1.00", remark="x",
                                                    idempotency_key="k"),
                   MSG_IDEMPOTENCY_MISMATCH)


# --- Keys are kept at least 24 hours, then pruned ---

def test_prune_idempotency_keys_deletes_only_keys_older_than_the_setting_R_TR_7(ab, settings):
    admin, a, b = ab
    settings.EAC_IDEMPOTENCY_KEEP_HOURS = 48
    for key in ("old", "edge", "new"):
        services.top_up(actor=None, account=a, amount="1.00", idempotency_key=key)
    now = timezone.now()
    IdempotencyKey.objects.filter(key="old").update(created_at=now - timedelta(hours=48, minutes=1))
    IdempotencyKey.objects.filter(key="edge").update(created_at=now - timedelta(hours=47, minutes=59))
    out = StringIO()
    call_command("prune_idempotency_keys", stdout=out)
    assert "1 idempotency key(s) older than 48 hours deleted" in out.getvalue()
    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"edge", "new"}
    # The records stay; only the key is forgotten.
    assert TopUp.objects.filter(account=a).count() == 4


def test_keys_are_kept_at_least_24_hours_even_if_set_lower_R_TR_7(ab, settings):
    admin, a, b = ab
    settings.EAC_IDEMPOTENCY_KEEP_HOURS = 1
    services.top_up(actor=None, account=a, amount="1.00", idempotency_key="day-old")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    call_command("prune_idempotency_keys", stdout=StringIO())
    assert IdempotencyKey.objects.filter(key="day-old").exists()
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    call_command("prune_idempotency_keys", stdout=StringIO())
    assert not IdempotencyKey.objects.exists()


# --- Races (PostgreSQL: real row locks and concurrent transactions) ---

def _race(n, target):
    """Run ``target(i)`` in ``n`` threads released together; return results and errors by thread."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_key_raced_from_two_threads_moves_money_once_R_TR_7():
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    for round_ in range(15):
        key = f"race-{round_}"
        results, errors = _race(2, lambda i: services.transfer_create(
            actor=admin, payer=a, payee=b, amount="10.00", remark="race", idempotency_key=key))
        assert errors == [None, None]
        assert results[0].pk == results[1].pk
        assert isinstance(results[0], TransferRecord)
    assert TransferRecord.objects.count() == 15
    assert figures(a)[0] == D("850.00") and figures(b)[1] == D("150.00")
    assert ledger_differences() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_key_raced_with_different_parameters_one_wins_one_refused_R_TR_7():
    enterprise, ma, admin = make_enterprise()
    a = make_account(enterprise=enterprise)
    for round_ in range(10):
        key = f"mix-{round_}"
        results, errors = _race(2, lambda i: services.charge(
            actor=None, account=a, amount=f"{i + 1}.00", idempotency_key=key))
        won = [r for r in results if r is not None]
        lost = [e for e in errors if e is not None]
        assert len(won) == 1 and len(lost) == 1
        assert getattr(lost[0], "message", None) == MSG_IDEMPOTENCY_MISMATCH
    assert Charge.objects.count() == 10
    assert LedgerEntry.objects.filter(account=a).count() == 10
    assert figures(Account.objects.get(pk=a.pk))[3] == sum(Charge.objects.values_list("amount", flat=True))
    assert ledger_differences() == []
