"""Transactions for money operations: one atomic block, retried on deadlock or serialization failure."""

import functools
import logging
import random
import time

from django.db import OperationalError, connection, transaction

log = logging.getLogger("eac.db")

# PostgreSQL SQLSTATEs that mean "run the transaction again": serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = {"40001", "40P01"}
MAX_ATTEMPTS = 8


def _is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite: another writer held the lock past the busy timeout.
    return connection.vendor == "sqlite" and "database is locked" in str(exc)


def atomic_service(func):
    """Run ``func`` in one transaction; retry it whole on a deadlock or serialization failure.

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
            try:
                with transaction.atomic():
                    return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt >= MAX_ATTEMPTS or not _is_retryable(exc):
                    raise
                log.info("retrying %s after %s (attempt %d)", func.__name__, exc.__class__.__name__, attempt)
                time.sleep(random.uniform(0.001, 0.01) * attempt)

    return wrapper
