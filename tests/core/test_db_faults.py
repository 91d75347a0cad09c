"""A database connection killed under a service (R-TR-7, R-MON-4), on PostgreSQL.

``core.db.atomic_service`` runs a service again when its connection was lost before COMMIT was sent (the
server rolled the transaction back, so nothing can apply twice), never when COMMIT itself failed (the
outcome is unknown: the caller retries with its idempotency key). The pool checks a connection when it
hands it out, so one the server ended while it sat idle is replaced (``CONN_HEALTH_CHECKS``).
"""

import threading
import time
from unittest import mock

import pytest
from django.db import OperationalError, connection

from accounts import services
from accounts.ledger import ledger_differences
from accounts.models import Account, TopUp
from core.db import atomic_service
from tests.postgres import raw_connection
from tests.books import D, figures
from tests.factories import fund, make_account

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]



def _terminate_others(raw) -> int:
    rows = raw.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                       "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                       [connection.settings_dict["NAME"]]).fetchall()
    return len(rows)


def test_top_up_whose_connection_is_killed_before_commit_is_run_again_once_R_TR_7(ent, manager):
    enterprise, ma, admin = ent
    account = fund(make_account(enterprise=enterprise), "100.00")
    blocker, killer = raw_connection(), raw_connection()
    blocker.execute("BEGIN")
    blocker.execute(f"SELECT 1 FROM {Account._meta.db_table} WHERE id = %s FOR UPDATE", [account.pk])
    outcome = {}

    def run():
        try:
            outcome["result"] = services.top_up(actor=manager, account=account, amount="10.00",
                                                idempotency_key="killed-once")
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    for _ in range(200):  # the top-up waits for the account's row lock: kill its connection there
        row = killer.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                             [connection.settings_dict["NAME"]]).fetchone()
        if row:
            victim = row[0]
            break
        time.sleep(0.02)
    assert victim is not None
    killer.execute("SELECT pg_terminate_backend(%s)", [victim])
    time.sleep(0.3)
    blocker.execute("ROLLBACK")
    thread.join(timeout=30)
    blocker.close()
    killer.close()
    assert "error" not in outcome, outcome.get("error")
    assert TopUp.objects.filter(account=account, amount=D("10.00")).count() == 1
    assert outcome["result"].pk == TopUp.objects.get(account=account, amount=D("10.00")).pk
    assert figures(account)[0] == D("110.00")
    assert ledger_differences() == []


def test_a_failed_commit_is_not_run_again_R_TR_7(ent):
    """The same kind of error that is retried from the body is raised when COMMIT fails: the transaction
    may have been applied, so only the caller's idempotency key can tell."""
    enterprise, ma, admin = ent
    account = make_account(enterprise=enterprise, name="Before")
    calls = []

    @atomic_service
    def rename():
        calls.append(1)
        Account.objects.filter(pk=account.pk).update(name="After")

    lost = OperationalError("server closed the connection unexpectedly")
    with mock.patch.object(connection, "commit", side_effect=lost), pytest.raises(OperationalError):
        rename()
    assert calls == [1]


def test_a_lost_connection_in_the_body_is_run_again_on_a_new_connection_R_TR_7(ent):
    enterprise, ma, admin = ent
    account = make_account(enterprise=enterprise, name="Before")
    pids = []
    killer = raw_connection()

    @atomic_service
    def rename():
        pids.append(connection.connection.info.backend_pid)
        Account.objects.filter(pk=account.pk).update(name="After")
        if len(pids) == 1:
            killer.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
        return Account.objects.get(pk=account.pk).name

    assert rename() == "After"
    killer.close()
    assert len(pids) == 2 and pids[0] != pids[1]
    assert Account.objects.get(pk=account.pk).name == "After"


def test_pool_replaces_connections_killed_while_idle_R_TR_7(ent):
    """The idle connections of a fresh pool (min_size 2) all killed: the next query works.

    More dead idle connections than that, found one at a time, would outlast the pool timeout without the
    console's whole-pool check: tests/core/test_db_pool.py, bench/BANK.md.
    """
    enterprise, ma, admin = ent
    connection.close()
    connection.close_pool()  # a fresh pool: what a gunicorn sync worker holds
    connection.ensure_connection()
    connection.close()  # back to the pool, idle
    killer = raw_connection()
    assert _terminate_others(killer) >= 1
    for _ in range(100):
        if killer.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                          "AND backend_type = 'client backend'", [connection.settings_dict["NAME"]]).fetchone()[0] == 0:
            break
        time.sleep(0.02)
    killer.close()
    assert Account.objects.filter(pk=ma.pk).count() == 1
