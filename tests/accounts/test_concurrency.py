"""Money under concurrency (R-TR-7, R-MON-4): many threads on a few hot accounts, on PostgreSQL.

Eight threads do random transfers, withdrawals, charges, top-ups and credit limit changes on four
accounts for about five seconds. Afterwards money is conserved, no balance broke a rule, the ledger
check is clean, and no operation failed with a database error: only ``DomainError`` refusals.
"""

import random
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F, Sum

from accounts import selectors, services
from accounts.ledger import ledger_differences
from accounts.models import Account, Bill, Charge, TopUp, TransferPair, TransferRecord
from core.errors import DomainError
from core.models import AuditEvent
from tests.factories import effective_contract, fund, make_account, make_enterprise, make_manager

D = Decimal
THREADS = 8
SECONDS = 5.0


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return D(rng.randint(low * 100, high * 100)) / 100


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_random_money_operations_on_hot_accounts_keep_every_rule_R_TR_7_R_MON_4():
    enterprise, ma, admin = make_enterprise()
    manager = make_manager()
    effective_contract(enterprise, admin, "3000.00")
    hot = [fund(make_account(enterprise=enterprise, name=f"Hot {i}"), "1000.00") for i in range(4)]
    for account in hot:
        services.alert_set(actor=admin, account=account, enabled=True, threshold="300.00")
    pks = [a.pk for a in hot]

    tallies = []  # one per thread: money in and out as the threads saw it succeed
    failures = []  # anything but a DomainError
    refusals = Counter()
    done = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS
    start = threading.Barrier(THREADS)

    def worker(seed):
        rng = random.Random(seed)
        topped, charged = D("0.00"), D("0.00")
        try:
            start.wait()
            while time.monotonic() < deadline:
                kind = rng.choice(["transfer", "transfer", "withdrawal", "withdrawal", "charge", "top_up", "credit"])
                x, y = rng.sample(pks, 2)
                try:
                    if kind == "transfer":
                        services.transfer_create(actor=admin, payer=x, payee=y, amount=_amount(rng, 1, 400),
                                                 remark="load")
                    elif kind == "withdrawal":
                        services.withdrawal_create(actor=admin, source=x, target=y, amount=_amount(rng, 1, 300),
                                                   remark="load")
                    elif kind == "charge":
                        amount = _amount(rng, 1, 500)
                        services.charge(actor=manager, account=x, amount=amount, description="usage")
                        charged += amount
                    elif kind == "top_up":
                        amount = _amount(rng, 1, 400)
                        services.top_up(actor=manager, account=x, amount=amount)
                        topped += amount
                    else:
                        services.credit_limit_set(actor=admin, account=x, new_limit=_amount(rng, 0, 1200))
                    with lock:
                        done[kind] += 1
                except DomainError as exc:
                    with lock:
                        refusals[(kind, exc.rule or exc.code)] += 1
        except BaseException as exc:  # noqa: BLE001 - a database error is a failure of the test
            with lock:
                failures.append(repr(exc))
        finally:
            with lock:
                tallies.append((topped, charged))
            connection.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not any(t.is_alive() for t in threads)
    print(f"\ndone {dict(done)}; refused {dict(refusals)}")

    # No operation failed with a database error (deadlocks are retried inside the services).
    assert failures == []
    assert sum(done.values()) > 50, f"too little happened: {done}"
    assert done["transfer"] and done["withdrawal"] and done["charge"] and done["top_up"]

    # The records are exactly what the threads saw succeed.
    topped = sum((t for t, _ in tallies), D("0.00"))
    charged = sum((c for _, c in tallies), D("0.00"))
    initial = D("4000.00")
    assert TopUp.objects.aggregate(s=Sum("amount"))["s"] == initial + topped
    assert (Charge.objects.aggregate(s=Sum("amount"))["s"] or D("0.00")) == charged

    # Money is conserved: net worth of all accounts = top-ups - charges (transfers move, never make money).
    accounts = list(Account.objects.filter(enterprise=enterprise))
    net_worth = sum((a.own_cash + a.transfer_book_balance - a.outstanding_balance for a in accounts), D("0.00"))
    assert net_worth == initial + topped - charged

    # No balance broke a rule.
    for a in accounts:
        assert min(a.own_cash, a.transfer_book_balance, a.credit_limit, a.outstanding_balance) >= 0
        unpaid = Bill.objects.filter(account=a).aggregate(s=Sum("unpaid_amount"))["s"] or D("0.00")
        assert a.outstanding_balance == unpaid
        # A transfer book balance is only ever money received and not yet withdrawn (R-MON-2).
        received = TransferPair.objects.filter(target=a).aggregate(s=Sum("remaining_revocable"))["s"] or D("0")
        assert a.transfer_book_balance <= received
    assert not TransferPair.objects.filter(remaining_revocable__gt=F("total_transferred")).exists()
    summary = selectors.credit_summary(enterprise)
    assert summary["allocated"] <= summary["total_credit_limit"]  # R-CR-4 held under concurrency
    # Each transfer left its payer with available credit >= 0 (R-TR-2); each withdrawal left its
    # target (B) with available credit >= 0 (R-TR-4), read from the audit's after-figures.
    for event in AuditEvent.objects.filter(action__in=["transfer", "withdrawal"]):
        side = event.after["payer" if event.action == "transfer" else "target"]
        available = (D(side["own_cash"]) + D(side["transfer_book_balance"]) + D(side["credit_limit"])
                     - D(side["outstanding_balance"]))
        assert available >= 0, (event.action, event.after)
    assert TransferRecord.objects.count() == done["transfer"] + done["withdrawal"]

    # The books balance.
    assert ledger_differences() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_opposite_transfers_do_not_deadlock_R_TR_7():
    """A -> B and B -> A at the same time lock in the same (primary key) order: both complete."""
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "500.00")
    b = fund(make_account(enterprise=enterprise), "500.00")
    errors = []
    barrier = threading.Barrier(2)

    def run(payer, payee):
        try:
            barrier.wait()
            for _ in range(40):
                services.transfer_create(actor=admin, payer=payer, payee=payee, amount="1.00", remark="x")
        except BaseException as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a.pk, b.pk)), threading.Thread(target=run, args=(b.pk, a.pk))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.own_cash, a.transfer_book_balance) == (D("460.00"), D("40.00"))
    assert (b.own_cash, b.transfer_book_balance) == (D("460.00"), D("40.00"))
    assert ledger_differences() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_transfer_does_not_wait_for_a_credit_change_holding_the_enterprise_R_TR_7():
    """Regression: the enterprise row was locked FOR UPDATE by credit_limit_set, and every money service's
    audit event insert needs FOR KEY SHARE on that row, so transfers queued behind credit changes and,
    holding account locks meanwhile, deadlocked with them. FOR NO KEY UPDATE lets the insert through."""
    from django.db import transaction

    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = make_account(enterprise=enterprise)
    holding, release = threading.Event(), threading.Event()

    def hold_enterprise_lock():
        try:
            with transaction.atomic():
                services.lock_enterprise(enterprise.pk)  # what credit_limit_set holds while it works
                holding.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_enterprise_lock)
    holder.start()
    assert holding.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        started = time.monotonic()
        services.transfer_create(actor=admin, payer=a, payee=b, amount="10.00", remark="x")
        assert time.monotonic() - started < 2.5
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert b.__class__.objects.get(pk=b.pk).transfer_book_balance == D("10.00")
