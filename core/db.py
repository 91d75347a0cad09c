"""Transactions for money operations: one atomic block, retried on deadlock or serialization failure,
and on a connection lost before COMMIT was sent."""

import functools
import logging
import random
import time

from django.db import InterfaceError, OperationalError, connection, transaction

log = logging.getLogger("eac.db")

# PostgreSQL SQLSTATEs that mean "run the transaction again": serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = {"40001", "40P01"}
# The server ended the session (pg_terminate_backend, shutdown, crash): 57P01 admin_shutdown,
# 57P02 crash_shutdown, 57P03 cannot_connect_now; class 08 is "connection exception".
CONNECTION_LOST_SQLSTATES = {"57P01", "57P02", "57P03"}
MAX_ATTEMPTS = 8
MAX_CONNECTION_ATTEMPTS = 3


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite: another writer held the lock past the busy timeout.
    return connection.vendor == "sqlite" and "database is locked" in str(exc)


def is_connection_lost(exc: BaseException) -> bool:
    """The database connection broke (the server ended it or the socket closed), not a refusal of a statement.

    psycopg raises ``OperationalError`` with the server's SQLSTATE when it read the server's farewell
    (57P01 for ``pg_terminate_backend``), and without any SQLSTATE when the socket just closed ("server
    closed the connection unexpectedly", "the connection is closed"). A statement the server refused
    always carries a SQLSTATE, so "no SQLSTATE" means the client side lost the connection.
    """
    if connection.vendor != "postgresql" or not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    sqlstate = getattr(exc.__cause__ or exc, "sqlstate", None)
    return sqlstate is None or sqlstate in CONNECTION_LOST_SQLSTATES or sqlstate.startswith("08")


def drop_broken_connection() -> None:
    """After a lost connection: close Django's connection if it no longer works, so the next query (a retry)
    gets a working one from the pool."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def atomic_service(func):
    """Run ``func`` in one transaction; retry it whole on a deadlock or serialization failure, and on a
    connection lost while the transaction ran.

    A lost connection is retried only when the failure came from ``func`` itself, i.e. before COMMIT was
    sent: the server then rolled the transaction back, so running it again cannot apply it twice. A
    failure of the COMMIT itself leaves the outcome unknown and is raised (the caller retries with its
    idempotency key). Django's atomic block drops the broken connection (its rollback fails), and the
    pool, which checks connections when it hands them out, gives the retry a working one.

    When already inside a transaction (a service called by another), it joins it and does not retry:
    only the outermost block can be run again.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:
            with transaction.atomic():
                return func(*args, **kwargs)
        attempt = 0
        while True:
            attempt += 1
            body_done = False
            try:
                with transaction.atomic():
                    result = func(*args, **kwargs)
                    body_done = True
                return result
            except (OperationalError, InterfaceError) as exc:
                if not body_done and attempt < MAX_CONNECTION_ATTEMPTS and is_connection_lost(exc):
                    log.warning("retrying %s after a lost database connection (attempt %d): %s",
                                func.__name__, attempt, _first_line(exc))
                    drop_broken_connection()
                    continue
                if (attempt >= MAX_ATTEMPTS or not isinstance(exc, OperationalError)
                        or not is_retryable(exc)):
                    raise
                log.info("retrying %s after %s (attempt %d)", func.__name__, exc.__class__.__name__, attempt)
                time.sleep(random.uniform(0.001, 0.01) * attempt)

    return wrapper
