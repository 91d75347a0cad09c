"""The connection pool after the server ended its idle connections (core/postgresql/, bench/BANK.md), on PostgreSQL.

psycopg_pool alone finds dead idle connections one per attempt, pausing 1, 2, 4, 8 s between attempts: five dead
ones outlast a 4 s wait (and more than three the console's 10 s pool timeout). The console's backend makes the first
dead one found trigger a check of every idle connection, so the next attempt gets a live one.
"""

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DEAD = 5


def _raw() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
                           host=s["HOST"] or None, port=s["PORT"] or None, autocommit=True)


def _idle_connections_killed(pool: ConnectionPool, count: int) -> None:
    """``count`` connections put back in the pool, then ended by the server while they sit idle there."""
    conns = [pool.getconn() for _ in range(count)]
    pids = [conn.info.backend_pid for conn in conns]
    for conn in conns:
        pool.putconn(conn)
    with _raw() as raw:
        for pid in pids:
            raw.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def test_the_pool_is_the_consoles_and_checks_the_connections_it_hands_out():
    assert connection.settings_dict["ENGINE"] == "core.postgresql" and connection.settings_dict["CONN_HEALTH_CHECKS"]
    pool = connection.pool
    assert pool is not None and pool._check is not ConnectionPool.check_connection  # wrapped, not replaced by None


def test_many_dead_idle_connections_cost_one_pause_not_the_pool_timeout():
    connection.ensure_connection()
    pool = connection.pool
    _idle_connections_killed(pool, DEAD)
    conn = pool.getconn(timeout=4)  # psycopg_pool's own check alone: PoolTimeout after the 1 + 2 s pauses
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.putconn(conn)
    # And through Django, as a request gets its connection: every idle one is live again.
    connection.close()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
