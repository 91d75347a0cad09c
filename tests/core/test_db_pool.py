"""The connection pool after the server ended its idle connections (core/postgresql/, bench/BANK.md), on PostgreSQL.

psycopg_pool alone finds dead idle connections one per attempt, pausing 0, 1, 2, 4 s between attempts: five dead
ones outlast a 4 s wait (and more than four the console's 10 s pool timeout). The console's backend makes the first
dead one found start a check of every idle connection, so the request's next attempt gets a live one.
"""

import pytest
from django.db import connection
from psycopg_pool import ConnectionPool, PoolTimeout

from core.postgresql.base import check_or_sweep
from tests.postgres import raw_connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DEAD = 5



def _fresh_pool_with_dead_idle_connections(count: int) -> ConnectionPool:
    """A new pool (none of the idle connections earlier tests left) holding only ``count`` idle connections, which
    the server then ends while they sit there."""
    connection.close()
    connection.close_pool()
    pool = connection.pool
    pool.open(wait=True)
    conns = [pool.getconn() for _ in range(count)]
    pids = [conn.info.backend_pid for conn in conns]
    for conn in conns:
        pool.putconn(conn)
    assert pool.get_stats()["pool_available"] == count
    with raw_connection() as raw:
        for pid in pids:
            assert raw.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)
    return pool


def test_the_pool_is_the_consoles_and_wraps_the_check_django_gives_it():
    assert connection.settings_dict["ENGINE"] == "core.postgresql" and connection.settings_dict["CONN_HEALTH_CHECKS"]
    check = connection.pool._check
    assert check.func is check_or_sweep and check.args[0]() is connection.pool


def test_many_dead_idle_connections_cost_one_pause_not_the_pool_timeout():
    pool = _fresh_pool_with_dead_idle_connections(DEAD)
    conn = pool.getconn(timeout=4)  # psycopg_pool's own check alone: PoolTimeout (next test)
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.putconn(conn)
    assert pool.get_stats().get("connections_lost", 0) >= 1
    # Every idle connection is live again: a request through Django gets one at once.
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    connection.close()
    connection.close_pool()


def test_without_the_wrapped_check_the_same_pool_times_out():
    """The control: the same dead connections with psycopg_pool's own check, as Django's backend has it."""
    pool = _fresh_pool_with_dead_idle_connections(DEAD)
    pool._check = ConnectionPool.check_connection
    try:
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=4)
    finally:
        connection.close()
        connection.close_pool()  # the next test's pool is built (and wrapped) again
