"""Django's PostgreSQL backend (``ENGINE = "core.postgresql"``) with one change: how its connection pool checks.

Django hands psycopg_pool ``ConnectionPool.check_connection`` (``CONN_HEALTH_CHECKS``), which the pool runs on the
connection it is about to hand out. When that connection is dead, the pool discards it and tries the next idle
one, pausing 0, 1, 2, 4 s between attempts. But a connection dies idle for a reason that kills its neighbours too
(a server restart, ``pg_terminate_backend``, a network cut): with more than four dead idle connections the next
request waited out the 10 s pool timeout and failed (bench/BANK.md). Here the first dead connection found also
starts a check of every idle connection (``ConnectionPool.check``, which takes them all out of the pool, gives the
live ones back and replaces the dead ones), in a thread of its own and one at a time, so that a request never
waits for it: the request's next attempt waits for a connection the check gives back or opens. psycopg_pool's
``check`` also lets the pool grow by one connection, which ``max_idle`` closes again later.
"""

import functools
import logging
import threading
import weakref

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

log = logging.getLogger("eac.db")

_sweeping = threading.Lock()  # one check of the whole pool at a time, per process


def _sweep(pool: ConnectionPool) -> None:
    try:
        pool.check()
    except Exception:  # a pool closed meanwhile, or the server still down: the next dead connection tries again
        log.exception("pool %s: the check of the idle connections failed", pool.name)
    finally:
        _sweeping.release()


def check_or_sweep(pool_ref: weakref.ref, conn) -> None:
    """psycopg_pool's check of ``conn``; when it fails, a check of every idle connection starts (see above)."""
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        pool = pool_ref()
        if pool is not None and _sweeping.acquire(blocking=False):
            log.warning("pool %s: an idle connection was dead; checking every idle connection", pool.name)
            threading.Thread(target=_sweep, args=(pool,), name="eac-pool-check", daemon=True).start()
        raise  # this one is discarded by the pool


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django built the pool with psycopg_pool's check (or none, without CONN_HEALTH_CHECKS), which the pool
        # keeps as ``_check`` (psycopg_pool 3.2 and 3.3; tests/core/test_db_pool.py fails if that changes): wrap it
        # once. A weak reference: the pool holds its check.
        if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = functools.partial(check_or_sweep, weakref.ref(pool))
        return pool
