"""Django's PostgreSQL backend (``ENGINE = "core.postgresql"``) with one change: how its connection pool checks.

Django hands psycopg_pool ``ConnectionPool.check_connection`` (``CONN_HEALTH_CHECKS``), which the pool runs on the
connection it is about to hand out. When that connection is dead, the pool discards it, sleeps with backoff (1, 2,
4, 8 s) and tries the next idle one. But a connection dies idle for a reason that kills its neighbours too (a server
restart, ``pg_terminate_backend``, a network cut): with more than three dead idle connections, the next request
waited out the 10 s pool timeout and failed (bench/BANK.md). Here the first dead connection found makes the pool
check every idle connection at once (``ConnectionPool.check``, which replaces the dead ones), so the request gets a
live connection after the pool's first pause (about 1 s). ``tests/core/test_db_pool.py`` proves it.
"""

import logging

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

log = logging.getLogger("eac.db")


def _check_or_sweep(pool: ConnectionPool, conn) -> None:
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        log.warning("pool %s: an idle connection was dead; checking every idle connection", pool.name)
        pool.check()  # the dead ones are discarded and replaced; this one is discarded by the caller
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django built the pool with psycopg_pool's check (or none, without CONN_HEALTH_CHECKS); the pool keeps it
        # as ``_check`` (psycopg_pool 3.2 and 3.3): wrap it once.
        if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = lambda conn: _check_or_sweep(pool, conn)
        return pool
