"""Set-based SQL for the hot money writes: transfers and withdrawals (R-TR-3, R-TR-5, R-TR-7).

Through the ORM a transfer took about twenty round trips to the database. Here it takes four on PostgreSQL
(BEGIN with the locking read, the second read, the write, COMMIT), and the rules stay in ``accounts.services`` (they read what these functions
return):

1. ``lock_and_read``: one ``SELECT ... FOR NO KEY UPDATE`` of both accounts, in primary key order, with what
   the rules read (balances, flags, contacts, alert settings, the enterprise's company id); then one
   ``SELECT`` of the rest the rules read: the payer's overdue amount, the pair's remaining revocable amount,
   the request's idempotency key. That is a second statement on purpose: under READ COMMITTED a statement
   sees the data as of its start, so anything but the locked rows read in the locking statement could
   predate the commit of the transaction whose lock it waited for. (They were once sent together in a
   psycopg pipeline, to save a round trip: it cost more client CPU and more time than the round trip,
   440 against 235 µs of CPU per pair of reads; see bench/RESULTS.md.)
2. ``WriteBatch.run``: every insert and update of the operation at once: on PostgreSQL one data-modifying
   ``WITH`` statement (one round trip), on SQLite the same statements one after another.

Values read back raw are converted here (SQLite returns numbers as int or float).

On PostgreSQL a transfer goes one step further (``transfer_in_one_call``): the database function of
``accounts/sql/eac_transfer_create_v1.sql`` locks, reads, checks and writes in one call, in autocommit mode one
round trip in all, when the transfer goes through without an alert; every other case is left to the Python
path above, which the function is tested against (tests/accounts/test_transfer_function.py).
"""

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils.dateparse import parse_datetime

from core.money import CENT, ZERO

from .models import Account, Enterprise, LedgerEntry, TransferPair


def money(value) -> Decimal:
    """A money value read raw: two places whatever the database returned (SQLite: int or float)."""
    if value is None:
        return ZERO
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(CENT)


def _aware(value):
    """A datetime read raw (SQLite: text in UTC)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)


def _same(value):
    return value


# The account columns the rules read, each with its conversion of the raw value.
ACCOUNT_COLUMNS = {
    "id": _same, "account_id": _same, "name": _same, "enterprise_id": _same, "verified_company_id": _same,
    "contact_phone": _same, "contact_email": _same, "pay_on_behalf": bool, "risk_flag": bool,
    "own_cash": money, "transfer_book_balance": money, "credit_limit": money, "outstanding_balance": money,
    "alert_enabled": bool, "alert_threshold": money, "alert_sent_at": _aware,
}


@functools.cache
def _is_postgres() -> bool:
    # Asked several times per transfer; a process's default database does not change its engine.
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


# The statement texts depend only on their shape (how many accounts, which reads) and the database, so
# each is built once per process (and then, on PostgreSQL, prepared once per connection).
@functools.lru_cache(maxsize=64)
def _shaped(builder, *shape):
    return builder(*shape)


@contextmanager
def _cursor():
    """A cursor for the statements below.

    On PostgreSQL a server-side binding cursor on Django's connection, so each statement is prepared
    once per connection and then only executed (Django's own cursors bind client-side and send the
    full text every time: PostgreSQL parses and plans it again). Errors are Django's, as usual.
    """
    if not _is_postgres():
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _execute(cursor, sql: str, params) -> None:
    """Execute through Django's ``connection.execute_wrappers`` (so they see these statements too)."""
    if not isinstance(cursor, psycopg.Cursor):
        cursor.execute(sql, params)  # Django's own cursor (SQLite): it applies the wrappers itself
        return
    db = connections[DEFAULT_DB_ALIAS]

    def run(sql, params, many, context):
        return cursor.execute(sql, params, prepare=True)

    if not db.execute_wrappers:
        run(sql, params, False, None)
        return
    for wrapper in reversed(db.execute_wrappers):
        run = functools.partial(wrapper, run)
    run(sql, params, False, {"connection": db, "cursor": cursor})


def model_from_row(model, names: list[str], values):
    """What ``model.from_db`` returns for a row of only these fields (the others deferred: read on access), built
    without ``Model.__init__``, which costs a transfer more than its reads (bench/RESULTS.md, section 2). The
    init signals are the only other thing ``__init__`` does: with a receiver for them, ``from_db`` it is."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(DEFAULT_DB_ALIAS, names, values)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, DEFAULT_DB_ALIAS
    instance.__dict__.update(zip(names, values))
    return instance


def _accounts(rows) -> dict[int, Account]:
    """Accounts from rows of the ``ACCOUNT_COLUMNS`` followed by their enterprise's company id."""
    names = list(ACCOUNT_COLUMNS)
    accounts, enterprises = {}, {}
    converts = None if _is_postgres() else list(ACCOUNT_COLUMNS.values())  # psycopg returns them typed already
    for row in rows:
        values = row[:len(names)] if converts is None else [convert(value) for convert, value in zip(converts, row)]
        account = model_from_row(Account, names, values)
        if account.enterprise_id is not None:
            enterprise = enterprises.get(account.enterprise_id)
            if enterprise is None:
                enterprise = enterprises[account.enterprise_id] = model_from_row(
                    Enterprise, ["id", "company_id"], [account.enterprise_id, row[-1]])
            account._state.fields_cache["enterprise"] = enterprise  # what ``account.enterprise = ...`` caches
        accounts[account.pk] = account
    return accounts


@dataclass
class Locked:
    """The locked accounts, and what else the rules read, read after the locks were taken."""

    accounts: dict[int, Account]
    overdue: Decimal  # of ``overdue_of``
    pair: TransferPair | None
    key: tuple | None  # (operation, request_fingerprint, result_id) of an idempotency key already used


def _build_lock_sql(count: int, postgres: bool) -> str:
    sql = (f"SELECT {', '.join(f'a.{c}' for c in ACCOUNT_COLUMNS)}, e.company_id FROM accounts_account a "
           f"LEFT JOIN accounts_enterprise e ON e.id = a.enterprise_id "
           f"WHERE a.id IN ({', '.join(['%s'] * count)}) ORDER BY a.id")
    return sql + " FOR NO KEY UPDATE OF a" if postgres else sql


def _lock_sql(pks) -> str:
    return _shaped(_build_lock_sql, len(pks), _is_postgres())


def _build_after_lock_sql(with_overdue: bool) -> str:
    overdue = ("(SELECT SUM(b.unpaid_amount) FROM accounts_bill b "
               "WHERE b.account_id = %s AND b.unpaid_amount > 0 AND b.due_date < %s)") if with_overdue else "NULL"
    return (f"SELECT {overdue}, p.id, p.remaining_revocable, p.total_transferred, "
            "k.operation, k.request_fingerprint, k.result_id FROM (SELECT 1 AS one) AS one "
            "LEFT JOIN accounts_transferpair p ON p.source_id = %s AND p.target_id = %s "
            "LEFT JOIN core_idempotencykey k ON k.key = %s")


def _after_lock_sql(*, on, overdue_of, pair, key) -> tuple[str, list]:
    params = [overdue_of, connection.ops.adapt_datefield_value(on)] if overdue_of is not None else []
    params += [*(pair or (None, None)), key]
    return _shaped(_build_after_lock_sql, overdue_of is not None), params


def lock_and_read(pks, *, on, overdue_of: int | None = None, pair: tuple[int, int] | None = None,
                  key: str | None = None) -> Locked:
    """Lock the accounts ``pks`` in primary key order (R-TR-7) and read them fresh; then read
    ``overdue_of``'s overdue amount on ``on`` (R-MON-2), the (source, target) ``pair`` and the ``key``.

    The accounts carry only the columns of ``ACCOUNT_COLUMNS`` (others are deferred) and their
    ``enterprise`` with its company id. ``FOR NO KEY UPDATE``: see ``services._lock_accounts``; SQLite
    has no row locks (its write transactions are serialized). The second statement starts, with its own
    snapshot, once the first holds the locks.
    """
    pks = sorted(set(pks))
    after_sql, after_params = _after_lock_sql(on=on, overdue_of=overdue_of, pair=pair, key=key)
    with _cursor() as cursor:
        _execute(cursor, _lock_sql(pks), pks)
        rows = cursor.fetchall()
        _execute(cursor, after_sql, after_params)
        overdue, pair_id, remaining, total, operation, fingerprint, result_id = cursor.fetchone()
    accounts = _accounts(rows)
    found_pair = None
    if pair_id is not None:
        found_pair = TransferPair(id=pair_id, source_id=pair[0], target_id=pair[1],
                                  remaining_revocable=money(remaining), total_transferred=money(total))
    return Locked(accounts=accounts, overdue=money(overdue), pair=found_pair,
                  key=(operation, fingerprint, result_id) if operation is not None else None)


class WriteBatch:
    """Inserts and updates sent at once: one data-modifying ``WITH`` on PostgreSQL, one by one on SQLite.

    Each part is named; a later part refers to the id an earlier part returned as ``{name}`` in its SQL.
    The parts must not depend on each other's effects otherwise (in a ``WITH`` they all see the same
    snapshot). ``run`` returns the ids of the parts added with ``returning=True``.
    """

    def __init__(self):
        self.parts: list[tuple[str, str, list, bool]] = []

    def add(self, name: str, sql: str, params=(), *, returning: bool = False) -> None:
        self.parts.append((name, sql, list(params), returning))

    def run(self) -> dict[str, int]:
        returned = [name for name, _, _, returning in self.parts if returning]
        with _cursor() as cursor:
            if _is_postgres():
                refs = {name: f"(SELECT id FROM {name})" for name in returned}
                ctes, params = [], []
                for name, sql, part_params, returning in self.parts:
                    ctes.append(f"{name} AS ({sql.format(**refs)}{' RETURNING id' if returning else ''})")
                    params += part_params
                select = ", ".join(refs[name] for name in returned) or "1"
                _execute(cursor, f"WITH {', '.join(ctes)} SELECT {select}", params)
                return dict(zip(returned, cursor.fetchone()))
            ids: dict[str, int] = {}
            for name, sql, part_params, returning in self.parts:
                sql = sql.format(**{k: int(v) for k, v in ids.items()})
                _execute(cursor, sql + (" RETURNING id" if returning else ""), part_params)
                if returning:
                    ids[name] = cursor.fetchone()[0]
            return ids


def _at(at):
    return at if _is_postgres() else connection.ops.adapt_datetimefield_value(at)


def _amount(value: Decimal) -> Decimal:
    # Both backends take a Decimal as it is (Django's adapt_decimalfield_value is the identity on both).
    return value


def add_operation(batch: WriteBatch, *, kind: str, actor_id, description: str, at) -> None:
    """The operation row (``op``) with its external amount 0: money moved inside the enterprise."""
    batch.add("op", "INSERT INTO accounts_operation (kind, external_amount, actor_id, description, created_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
              [kind, _amount(ZERO), actor_id, description, _at(at)], returning=True)


def add_postings(batch: WriteBatch, changes: list[tuple[Account, str, Decimal]], *, at) -> None:
    """Ledger rows of operation ``op`` and the matching balance changes of the locked accounts (R-MON-4).

    ``changes`` are (account, bucket, signed amount); the in-memory accounts get the new balances too.
    """
    rows, params = [], []
    per_account: dict[int, dict[str, Decimal]] = {}
    for account, bucket, delta in changes:
        if delta == 0:
            continue
        field = LedgerEntry.apply_to(account, bucket, delta)
        rows.append("({op}, %s, %s, %s, %s)")
        params += [account.pk, bucket, _amount(delta), _at(at)]
        per_account.setdefault(account.pk, {}).setdefault(field, ZERO)
        per_account[account.pk][field] += delta
    batch.add("ledger", "INSERT INTO accounts_ledgerentry (operation_id, account_id, bucket, amount, created_at) "
                        f"VALUES {', '.join(rows)}", params)
    # Parts are named by position, not by account: the statement's text must not depend on the accounts,
    # or it would be prepared again for every pair of accounts.
    for position, (pk, deltas) in enumerate(per_account.items()):
        # ROUND to the cent: exact on PostgreSQL, and on SQLite (which computes in binary floating point) it keeps
        # 100.00 - 98.62 - 1.38 at 0.00 instead of -1.4e-14, which the CHECK constraints would refuse (R-MON-1).
        sets = ", ".join(f"{field} = ROUND({field} + %s, 2)" for field in deltas)
        batch.add(f"balances_{position}", f"UPDATE accounts_account SET {sets} WHERE id = %s",
                  [_amount(d) for d in deltas.values()] + [pk])


def add_pair_transfer(batch: WriteBatch, *, source_id: int, target_id: int, amount: Decimal) -> None:
    """A transfer adds to the (source, target) pair's remaining revocable and total transferred (R-TR-3)."""
    batch.add("pair", "INSERT INTO accounts_transferpair (source_id, target_id, remaining_revocable, total_transferred) "
                      "VALUES (%s, %s, %s, %s) ON CONFLICT (source_id, target_id) DO UPDATE SET "
                      "remaining_revocable = ROUND(accounts_transferpair.remaining_revocable + excluded.remaining_revocable, 2), "
                      "total_transferred = ROUND(accounts_transferpair.total_transferred + excluded.total_transferred, 2)",
              [source_id, target_id, _amount(amount), _amount(amount)])


def add_pair_withdrawal(batch: WriteBatch, *, pair: TransferPair, amount: Decimal) -> None:
    """A withdrawal takes from the pair's remaining revocable amount (R-TR-5)."""
    pair.remaining_revocable -= amount
    batch.add("pair", "UPDATE accounts_transferpair SET remaining_revocable = ROUND(remaining_revocable - %s, 2) WHERE id = %s",
              [_amount(amount), pair.pk])


def add_transfer_record(batch: WriteBatch, *, kind: str, payer_id: int, payee_id: int, amount: Decimal, remark: str,
                        actor_id, at) -> None:
    batch.add("record", "INSERT INTO accounts_transferrecord (kind, payer_id, payee_id, amount, remark, actor_id, "
                        "operation_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, {op}, %s)",
              [kind, payer_id, payee_id, _amount(amount), remark, actor_id, _at(at)], returning=True)


def add_audit_event(batch: WriteBatch, *, action: str, object_type: str, repr_prefix: str, enterprise_id, actor_id,
                    before_json: str, after_json: str, ip, at) -> None:
    """The audit event (R-AU-1) of the record ``record``; its ``object_repr`` is ``repr_prefix (id)``."""
    batch.add("audit", "INSERT INTO core_auditevent (enterprise_id, actor_id, action, object_type, object_id, "
                       "object_repr, before, after, ip_address, created_at) "
                       "VALUES (%s, %s, %s, %s, CAST({record} AS VARCHAR(64)), %s || CAST({record} AS VARCHAR(64)) "
                       "|| ')', %s, %s, %s, %s)",
              [enterprise_id, actor_id, action, object_type, f"{repr_prefix} (", before_json, after_json, ip, _at(at)])


def add_idempotency_key(batch: WriteBatch, claim, *, result_type: str) -> None:
    """The request's idempotency key with its result, the record ``record`` (R-TR-7)."""
    batch.add("idem", "INSERT INTO core_idempotencykey (key, operation, request_fingerprint, result_type, result_id, "
                      "created_at) VALUES (%s, %s, %s, %s, {record}, %s)",
              [claim.key, claim.operation, claim.fingerprint, result_type, _at(claim.at)])


# ---------------------------------------------------------------------------------------------
# The transfer in one call (PostgreSQL): accounts/sql/eac_transfer_create_v1.sql
# ---------------------------------------------------------------------------------------------

def transfer_function_enabled() -> bool:
    """Whether ``transfer_create`` tries the PostgreSQL function first (``settings.EAC_TRANSFER_FUNCTION``)."""
    return _is_postgres() and settings.EAC_TRANSFER_FUNCTION


_TRANSFER_CALL = ("SELECT * FROM eac_transfer_create(%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::numeric, "
                  "%s::text, %s::date, %s::timestamptz, %s::inet, %s::text, %s::text, %s::text, %s::timestamptz, "
                  "%s::text)")


@dataclass
class Transferred:
    record_id: int
    operation_id: int
    accounts: dict[int, Account]  # both accounts, after the transfer


def transfer_in_one_call(*, enterprise_id: int, actor_id: int, payer_id: int, payee_id: int, amount: Decimal,
                         remark: str, on, at, ip, claim, result_type: str) -> Transferred | None:
    """The whole transfer in one statement when it goes through without an alert to send; else ``None``.

    ``None`` means nothing was written and the caller must run the Python path, which decides (refusal,
    replay, alert). The function locks both accounts (R-TR-7) until the end of the caller's transaction, or of
    its own statement's in autocommit mode.
    """
    key = (claim.key, claim.operation, claim.fingerprint, claim.at) if claim is not None else (None,) * 4
    params = [enterprise_id, actor_id, payer_id, payee_id, amount, remark, on, at, ip, *key, result_type]
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    # What ``_cursor`` does, without its generator: this is the one statement of most transfers.
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        _execute(cursor, _TRANSFER_CALL, params)
        rows = cursor.fetchall()
    if len(rows[0]) != 3 + len(ACCOUNT_COLUMNS) + 1:  # outcome, record, operation; the account; its company id
        raise RuntimeError("eac_transfer_create returns other columns than accounts.fastsql.ACCOUNT_COLUMNS")
    if rows[0][0] != "done":
        return None
    return Transferred(record_id=rows[0][1], operation_id=rows[0][2], accounts=_accounts([row[3:] for row in rows]))
