"""Rating: what pays for each usage record (R-US-2 to R-US-7).

A batch of unrated records is rated in one transaction with a fixed number of queries, whatever its size:
the records (taken off the rating queue, ``UsagePending``), their accounts (locked, by primary key), the
candidate grants and assets (locked, by primary key), their per-hour consumption, the ids of the new
operations and charges, then one set-based write per table (``COPY`` on PostgreSQL, ``executemany`` on
SQLite) and one statement each for the per-hour consumption, the coupons and the balances. On PostgreSQL the
deduction lines are the exception: they go in chunks of ``DEDUCTION_CHUNK`` records, one ``COPY`` each, written
by a thread while the rating goes on (``_DeductionWriter``), so that the server's work on them overlaps the
rating's Python. Records are rated in record order (primary key), so a savings plan's hourly commitment is used
up in that order (R-US-5).

Per record, in the order of R-US-2: reserved instances, SCU packages, savings plans, coupons, then the
account's balance (R-MON-5). Within a type the account's own assets come before shared ones, then the one
that expires first. A shared asset counts only when a grant of the account contains the usage hour
(R-SH-6, R-SH-7); an owned asset needs no grant. Everything is computed exactly in ``Decimal``; money is
rounded to the cent once, where it is recorded, with the parts split so they sum exactly to the record's
amount (``core.money.split_exact``).

Throughput: the hot loop works on plain tuples, lists and dicts (no model instances, no ORM calls): rows are
read with ``values_list`` and written as tuples. Model instances are made only for an account whose low
balance alert changes state, to run the very alert evaluation of the charge service.

What the balance pays is charged per *run*: within a batch, an account's balance parts, in record order, are
cut into runs of consecutive records whose bills would fall due on the same day (same local billing date),
and each run is one charge of its sum. Each record keeps its own deduction line (what paid for it, shown on
the details page), which names the run's charge; the lines of a charge sum exactly to it (R-MON-1). This
writes one operation, one charge, one to three ledger rows and at most one bill per run instead of per record
(a batch of 10,000 records of 1,000 accounts: about 1,000 runs for 7,000 charged records), and changes no
figure of any account:

* R-MON-5: spending transfer book first, then own cash, then a bill, is greedy, so charging a run's sum from
  the balances before the run takes from each bucket exactly what charging its records one after the other
  takes; the balances after a batch are the same to the cent. The bill of a run has the due date its
  records' bills would have had (a run never spans two), so overdue amounts (R-MON-2) are unchanged too.
* R-MON-4: the stored balances change once per account and batch anyway (one ``UPDATE``); each run's
  change is one operation with its ledger rows (account, bucket, signed amount, operation, time: the latest
  billing time of the run), its record is the charge, and the usage records it paid are its deduction lines.
  ``check_ledger`` holds per operation as before.
* R-AL-3: an alert is evaluated after every change of an account's balance, that is after each run, with the
  service's own code; charges only lower the balance, so a batch sends at most the one alert a record-by-record
  evaluation would have sent.
* R-US-7: unchanged; a record is still rated once, by the transaction that takes it off the queue.

Only the bookkeeping granularity depends on the batch size (more, smaller charges with smaller batches); a
test holds that balances, deduction lines, bill totals per due date and alerts do not.

A run's balance charge is made either through ``accounts.services.charge`` (``through_service=True``: the
reference, one call per run) or by the batch path below, which writes exactly the rows that service writes for
it (Operation of kind charge with ``external_amount = -amount``, LedgerEntry rows, Charge, Bill) and runs the
same alert evaluation. Tests hold that both give identical rows and a clean ledger.
"""

import gc
import queue
import re
import sys
import threading
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.rules import split_charge
from accounts.models import Account, Bill, Charge, LedgerEntry, Operation
from core.db import atomic_service
from core.money import ZERO, round_money, split_exact

from .models import DEDUCTION_ORDER, Asset, AssetHourUsage, AssetType, Deduction, Grant, UsagePending, UsageRecord

QUANTUM = Decimal("0.000001")
TYPE_RANK = {t.value: i for i, t in enumerate(DEDUCTION_ORDER)}
DEFAULT_BATCH = 10000
DEDUCTION_CHUNK = 2500  # records rated between two writes of deduction lines (see ``_DeductionWriter``)

RI, SCU, SP, COUPON = (AssetType.RESERVED_INSTANCE.value, AssetType.SCU_PACKAGE.value, AssetType.SAVINGS_PLAN.value,
                       AssetType.COUPON.value)
BALANCE = Deduction.Source.BALANCE.value
CHARGE = Operation.Kind.CHARGE.value
ONE = Decimal(1)

# The columns read per record; a record is a tuple in this order.
RECORD_FIELDS = ("pk", "record_id", "account_id", "product_code", "region", "instance_type", "quantity",
                 "unit_price", "amount", "usage_hour", "billed_at")
R_PK, R_RECORD_ID, R_ACCOUNT, R_PRODUCT, R_REGION, R_TYPE, R_QTY, R_PRICE, R_AMOUNT, R_HOUR, R_BILLED = range(11)


def _q(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM)


class _Asset:
    """What rating needs of an asset, and its coupon state."""

    __slots__ = ("pk", "kind", "owner_id", "valid_from", "valid_to", "products", "capacity", "commitment",
                 "discount", "instance_type", "region", "remaining")

    def __init__(self, pk, kind, owner_id, valid_from, valid_to, products, commitment, discount, instance_type,
                 region, instance_count, capacity_gb, remaining):
        self.pk, self.kind, self.owner_id = pk, kind, owner_id
        self.valid_from, self.valid_to = valid_from, valid_to
        self.products = frozenset(products or ())
        self.capacity = Decimal(instance_count) if kind == RI else capacity_gb
        self.commitment, self.discount = commitment, discount
        self.instance_type, self.region, self.remaining = instance_type, region, remaining


ASSET_FIELDS = ("pk", "asset_type", "owner_id", "valid_from", "valid_to", "products", "hourly_commitment",
                "discount_rate", "instance_type", "region", "instance_count", "capacity_gb", "remaining_value")


class _Batch:
    """In-memory state of one batch: candidates per account, per-hour consumption, coupons touched."""

    def __init__(self, records):
        account_ids = {r[R_ACCOUNT] for r in records}
        hours = {r[R_HOUR] for r in records}
        lo, hi = min(hours), max(hours)
        grants = _fetch(Grant.objects.filter(account_id__in=account_ids, effective_from__lte=hi)
                        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=lo))
                        .values_list("asset_id", "account_id", "effective_from", "effective_to"))
        granted_ids = {g[0] for g in grants}
        assets = Asset.objects.filter(Q(owner_id__in=account_ids) | Q(pk__in=granted_ids),
                                      status=Asset.Status.ACTIVE, valid_from__lte=hi, valid_to__gt=lo)
        if connection.features.has_select_for_update:
            assets = assets.select_for_update(no_key=connection.features.has_select_for_no_key_update)
        assets = [_Asset(*row) for row in assets.order_by("pk").values_list(*ASSET_FIELDS)]
        by_id = {a.pk: a for a in assets}
        # candidates[account] = [own?, asset, intervals] in the order of R-US-2 (type, own first, expiry, pk).
        found: dict[int, list] = defaultdict(list)
        for asset in assets:
            if asset.owner_id in account_ids:
                found[asset.owner_id].append([True, asset, None])
        shared: dict[tuple[int, int], list] = {}
        for asset_id, account_id, start, end in grants:
            asset = by_id.get(asset_id)
            if asset is None or asset.owner_id == account_id:
                continue
            key = (asset_id, account_id)
            if key not in shared:
                shared[key] = [False, asset, []]
                found[account_id].append(shared[key])
            shared[key][2].append((start, end))
        # Per account, three lists in deduction order: reserved instances and SCU packages, savings plans, coupons.
        self.candidates: dict[int, tuple[list, list, list]] = {}
        for account_id, items in found.items():
            items.sort(key=lambda c: (TYPE_RANK[c[1].kind], not c[0], c[1].valid_to, c[1].pk))
            capacity = [(c[1], c[2]) for c in items if c[1].kind in (RI, SCU)]
            plans = [(c[1], c[2]) for c in items if c[1].kind == SP]
            coupons = [(c[1], c[2]) for c in items if c[1].kind == COUPON]
            self.candidates[account_id] = (capacity, plans, coupons)
        hourly_ids = [a.pk for a in assets if a.kind != COUPON]
        self.used: dict[tuple[int, object], Decimal] = {}
        if hourly_ids:
            self.used.update(((a, h), u) for a, h, u in AssetHourUsage.objects.filter(
                asset_id__in=hourly_ids, usage_hour__in=hours).values_list("asset_id", "usage_hour", "used"))
        self.dirty_hours: set = set()
        self.dirty_coupons: dict[int, _Asset] = {}

    def rate(self, record) -> tuple[list[tuple], Decimal, Decimal]:
        """The deduction lines of ``record`` without the balance line, as (source, asset id, covered quantity,
        amount, asset value used), the amount left for the balance, and the quantity it covers."""
        found = self.candidates.get(record[R_ACCOUNT])
        if found is None:  # no asset applies: the balance pays it all
            return [], record[R_AMOUNT], record[R_QTY]
        capacity, plans, coupons = found
        hour = record[R_HOUR]
        product = record[R_PRODUCT]
        price = record[R_PRICE]
        q_rem = record[R_QTY]
        used = self.used
        parts = []  # exact: source, asset id, covered quantity, pay-as-you-go value, asset value used
        # R-US-3, R-US-4: instance-hours / GB per hour, shared by all the accounts together.
        for asset, intervals in capacity:
            if q_rem <= 0:
                break
            if asset.kind == RI:
                if not record[R_TYPE] or asset.instance_type != record[R_TYPE] or asset.region != record[R_REGION]:
                    continue
            elif product not in asset.products:
                continue
            if not _applies(asset, intervals, hour):
                continue
            key = (asset.pk, hour)
            before = used.get(key, ZERO)
            left = asset.capacity - before
            if left <= 0:
                continue
            covered = min(q_rem, left)
            used[key] = before + covered
            self.dirty_hours.add(key)
            parts.append((asset.kind, asset.pk, covered, covered * price, ZERO))
            q_rem -= covered
        # R-US-5: the hour's unused commitment R pays C x (1 - d).
        payg = q_rem * price
        for asset, intervals in plans:
            if payg <= 0:
                break
            if product not in asset.products or not _applies(asset, intervals, hour):
                continue
            key = (asset.pk, hour)
            before = used.get(key, ZERO)
            left = asset.commitment - before
            if left <= 0:
                continue
            cost = payg * (ONE - asset.discount)
            if left >= cost:
                use, covered_value, covered_qty = round_money(cost), payg, q_rem
            else:
                share = left / cost
                use, covered_value, covered_qty = left, payg * share, q_rem * share
            used[key] = before + use
            self.dirty_hours.add(key)
            parts.append((SP, asset.pk, covered_qty, covered_value, use))
            payg -= covered_value
            q_rem -= covered_qty
        # Money is recorded once, in cents, split so that the parts sum exactly to the record's amount.
        if parts:
            cents = split_exact(record[R_AMOUNT], [p[3] for p in parts] + [payg])
            lines = [(p[0], p[1], _q(p[2]), cents[i], p[4]) for i, p in enumerate(parts)]
            rest = cents[-1]
        else:
            lines, rest = [], record[R_AMOUNT]
        # R-US-6: coupons pay up to their remaining value.
        if rest > 0 and coupons:
            start, start_qty = rest, q_rem
            for asset, intervals in coupons:
                if rest <= 0:
                    break
                if asset.remaining <= 0 or (asset.products and product not in asset.products) \
                        or not _applies(asset, intervals, hour):
                    continue
                use = min(asset.remaining, rest)
                asset.remaining -= use
                self.dirty_coupons[asset.pk] = asset
                lines.append((COUPON, asset.pk, _q(start_qty * use / start), use, use))
                rest -= use
                q_rem -= start_qty * use / start
        return lines, rest, q_rem


def _applies(asset: _Asset, intervals, hour) -> bool:
    """The asset is valid at ``hour``, and owned (``intervals`` is None) or granted at ``hour`` (R-SH-6)."""
    if not (asset.valid_from <= hour < asset.valid_to):
        return False
    if intervals is None:
        return True
    for start, end in intervals:
        if start <= hour and (end is None or hour < end):
            return True
    return False


def _description(record, hours: dict | None = None) -> str:
    """``Usage <record id>: <product> <region> <usage hour>``; ``hours`` caches the formatted hours."""
    hour = record[R_HOUR]
    text = hours.get(hour) if hours is not None else None
    if text is None:
        text = f"{hour:%Y-%m-%d %H:00}"
        if hours is not None:
            hours[hour] = text
    return f"Usage {record[R_RECORD_ID]}: {record[R_PRODUCT]} {record[R_REGION]} {text}"[:200]


# --- Set-based writes -----------------------------------------------------------------------------------

def _table(model) -> str:
    return model._meta.db_table


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


class _Values:
    """How the batch path writes values into the rows it inserts: as they are for ``executemany`` (SQLite),
    or already in ``COPY``'s text format on PostgreSQL, so that ``_insert`` only joins ``str()`` of each value:
    ``\\N`` for NULL, strings escaped, each distinct datetime formatted once (``2025-06-01 10:00:00+00:00``).
    Formatting field by field in ``_insert`` cost 5 us a row, more than the rest of the batch's Python."""

    def __init__(self):
        self.copy = connection.vendor == "postgresql"
        self.null = "\\N" if self.copy else None
        self._times: dict = {}

    def text(self, value: str) -> str:
        if self.copy and _COPY_SPECIAL.search(value):
            return value.translate(_COPY_ESCAPES)
        return value

    def time(self, value):
        if not self.copy:
            return value
        text = self._times.get(value)
        if text is None:
            text = self._times[value] = str(value)
        return text


def _insert(model, columns: tuple[str, ...], rows: list) -> None:
    """Insert ``rows`` (sequences of the fields ``columns``, made with ``_Values``) into ``model``'s table in
    one statement: ``COPY ... FROM STDIN`` on PostgreSQL, one ``executemany`` elsewhere."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            with cursor.copy(_copy_statement(model, columns)) as copy:
                copy.write(_copy_data(rows))
        return
    fields = [model._meta.get_field(name) for name in columns]
    qn = connection.ops.quote_name
    column_list = ", ".join(qn(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    prepared = [[f.get_db_prep_save(v, connection) for f, v in zip(fields, row)] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {qn(_table(model))} ({column_list}) VALUES ({placeholders})", prepared)


def _copy_statement(model, columns: tuple[str, ...]) -> str:
    qn = connection.ops.quote_name
    column_list = ", ".join(qn(model._meta.get_field(name).column) for name in columns)
    return f"COPY {qn(_table(model))} ({column_list}) FROM STDIN"


def _copy_data(rows: list) -> bytes:
    """``COPY``'s text format of ``rows``, whose values were made with ``_Values``."""
    return ("\n".join(["\t".join(map(str, row)) for row in rows]) + "\n").encode()


def _update(model, columns: tuple[str, ...], rows: list[tuple], *, casts: tuple[str, ...]) -> None:
    """Set ``columns`` of the rows whose primary key is each row's first value, in one statement
    (``UPDATE ... FROM unnest(...)`` on PostgreSQL, one ``executemany`` elsewhere)."""
    if not rows:
        return
    qn = connection.ops.quote_name
    table = qn(_table(model))
    names = [qn(model._meta.get_field(c).column) for c in columns]
    if connection.vendor == "postgresql":
        arrays = [list(values) for values in zip(*rows)]
        aliases = ", ".join(f"c{i}" for i in range(len(rows[0])))
        unnest = ", ".join(f"%s::{cast}[]" for cast in ("bigint",) + casts)
        assignments = ", ".join(f"{name} = v.c{i + 1}" for i, name in enumerate(names))
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {assignments} FROM unnest({unnest}) AS v({aliases}) "
                           f"WHERE {table}.{qn('id')} = v.c0", arrays)
        return
    fields = [model._meta.get_field(c) for c in columns]
    assignments = ", ".join(f"{name} = %s" for name in names)
    prepared = [[f.get_db_prep_save(v, connection) for f, v in zip(fields, row[1:])] + [row[0]] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {qn('id')} = %s", prepared)


def _reserve_ids(count: int) -> tuple[list[int], list[int]]:
    """``count`` new primary keys for operations and for charges, in one query, so that the rows that
    reference them can be written in the same round of set-based inserts."""
    op_table, charge_table = _table(Operation), _table(Charge)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One sequence after the other, each resolved to its regclass once: nextval() alternating between two
            # sequences, or given a sequence name to look up, cost 5 us a call instead of 0.5.
            cursor.execute(
                "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS o, "
                "pg_get_serial_sequence(%s, 'id')::regclass AS c) "
                "SELECT ARRAY(SELECT nextval(s.o) FROM generate_series(1, %s)), "
                "ARRAY(SELECT nextval(s.c) FROM generate_series(1, %s)) FROM s", [op_table, charge_table, count, count])
            operation_ids, charge_ids = cursor.fetchone()
            return operation_ids, charge_ids
        # SQLite: the transaction holds the write lock from its start (IMMEDIATE), so nobody else inserts.
        qn = connection.ops.quote_name
        cursor.execute(f"SELECT (SELECT COALESCE(MAX(id), 0) FROM {qn(op_table)}), "
                       f"(SELECT COALESCE(MAX(id), 0) FROM {qn(charge_table)})")
        op_max, charge_max = cursor.fetchone()
        return list(range(op_max + 1, op_max + 1 + count)), list(range(charge_max + 1, charge_max + 1 + count))


ACCOUNT_FIELDS = ("pk", "own_cash", "transfer_book_balance", "outstanding_balance", "credit_limit", "alert_enabled",
                  "alert_threshold", "alert_sent_at")
# Columns left out are NULL: the operation's actor (the system rates) and the bill's paid_at.
OPERATION_COLUMNS = ("id", "kind", "external_amount", "description", "created_at")
LEDGER_COLUMNS = ("operation", "account", "bucket", "amount", "created_at")
BILL_COLUMNS = ("account", "operation", "amount", "unpaid_amount", "description", "created_at", "due_date")
CHARGE_COLUMNS = ("id", "account", "operation", "amount", "from_transfer_book", "from_own_cash", "billed",
                  "description", "created_at")
DEDUCTION_COLUMNS = ("usage_record", "position", "source", "asset", "covered_quantity", "amount", "asset_value_used",
                     "charge")


class _Run:
    """Consecutive balance parts of one account's records in a batch (record order) whose bills would fall due
    on the same day: one charge of their sum, made as the account's balances stand after the runs before it
    (R-MON-5; see the module's docstring). ``at``: the latest billing time of its records."""

    __slots__ = ("account_id", "due", "amount", "at", "records", "index")

    def __init__(self, account_id, due, index):
        self.account_id, self.due, self.index = account_id, due, index
        self.amount, self.at, self.records = ZERO, None, []


class _Runs:
    """The runs of a batch, made as its balance parts come, in record order: ``add`` puts a record's balance
    part in its account's current run, or starts a new one when the account has none yet or when the bill of
    this record would fall due on another day."""

    def __init__(self):
        self.runs: list[_Run] = []
        self._current: dict[int, _Run] = {}
        self._due_dates: dict = {}
        self._due_days = timedelta(days=settings.EAC_BILL_DUE_DAYS)

    def due(self, at):
        due = self._due_dates.get(at)
        if due is None:
            due = self._due_dates[at] = timezone.localdate(at) + self._due_days
        return due

    def add(self, record, amount) -> _Run:
        account_id, at = record[R_ACCOUNT], record[R_BILLED]
        due = self.due(at)
        run = self._current.get(account_id)
        if run is None or run.due != due:
            run = self._current[account_id] = _Run(account_id, due, len(self.runs))
            self.runs.append(run)
        run.amount += amount
        if run.at is None or at > run.at:
            run.at = at
        run.records.append(record)
        return run

    def most(self, records) -> int:
        """The most runs ``records`` can make: the runs they would make if each had a balance part. Each run of
        the batch starts in a different one of these (between two records of an account in one of them, every
        record of the account falls due the same day, so no new run starts), so there are never more."""
        count, last = 0, {}
        for record in records:
            due = self.due(record[R_BILLED])
            if last.get(record[R_ACCOUNT]) != due:
                last[record[R_ACCOUNT]] = due
                count += 1
        return count


def _run_description(run: _Run, hours: dict | None = None) -> str:
    """A single record's description (``_description``), or ``Usage of <n> records, <first id> to <last id>``."""
    if len(run.records) == 1:
        return _description(run.records[0], hours)
    first, last = run.records[0], run.records[-1]
    return f"Usage of {len(run.records)} records, {first[R_RECORD_ID]} to {last[R_RECORD_ID]}"[:200]


def _charge_all(runs: list[_Run], accounts: dict[int, list], values: _Values, operation_ids: list[int],
                charge_ids: list[int]) -> None:
    """Charge each run to its account's balance, exactly as ``accounts.services.charge`` would (R-MON-5), with
    set-based writes: one insert per table and one update of the balances. ``accounts``
    maps pk to [own cash, transfer book, outstanding, credit limit, alert enabled, threshold, alert sent at]
    and is updated. The run of index i gets the operation ``operation_ids[i]`` and the charge ``charge_ids[i]``
    (reserved before the rating, see ``_rate_batch``)."""
    operations, entries, bills, charges = [], [], [], []
    hours: dict = {}
    instances: dict[int, Account] = {}
    now = timezone.now()
    for run, op_id, charge_id in zip(runs, operation_ids, charge_ids):
        account_id, amount = run.account_id, run.amount
        state = accounts[account_id]
        cash, book, outstanding = state[0], state[1], state[2]
        when = values.time(run.at)
        from_book, from_cash, billed = split_charge(amount=amount, transfer_book_balance=book, own_cash=cash)
        state[0], state[1], state[2] = cash - from_cash, book - from_book, outstanding + billed
        description = values.text(_run_description(run, hours))
        operations.append((op_id, CHARGE, -amount, description, when))
        if from_book:
            entries.append((op_id, account_id, "transfer_book", -from_book, when))
        if from_cash:
            entries.append((op_id, account_id, "own_cash", -from_cash, when))
        if billed:
            entries.append((op_id, account_id, "outstanding", billed, when))
            bills.append((account_id, op_id, billed, billed, description, when, run.due))
        charges.append((charge_id, account_id, op_id, amount, from_book, from_cash, billed, description, when))
        if state[4]:
            below = state[0] + state[1] + state[3] - state[2] < state[5]
            if below == (state[6] is None):
                account = instances.get(account_id)
                if account is None:
                    account = instances[account_id] = Account.objects.get(pk=account_id)
                account.own_cash, account.transfer_book_balance, account.outstanding_balance = state[0], state[1], \
                    state[2]
                account_services.evaluate_alerts([account], at=now)
                state[6] = account.alert_sent_at
    _insert(Operation, OPERATION_COLUMNS, operations)
    _insert(LedgerEntry, LEDGER_COLUMNS, entries)
    _insert(Bill, BILL_COLUMNS, bills)
    _insert(Charge, CHARGE_COLUMNS, charges)
    touched = {run.account_id for run in runs}
    _update(Account, ("own_cash", "transfer_book_balance", "outstanding_balance"),
            [(pk, *accounts[pk][:3]) for pk in sorted(touched)], casts=("numeric", "numeric", "numeric"))


@atomic_service
def rate_batch(*, batch_size: int = DEFAULT_BATCH, through_service: bool = False, record_ids=None) -> int:
    """Rate up to ``batch_size`` unrated records (oldest first); returns how many. A record is rated by the
    transaction that takes it off the rating queue, so rating a record twice changes nothing (R-US-7)."""
    with _no_cyclic_gc():
        return _rate_batch(batch_size, through_service, record_ids)


@contextmanager
def _no_cyclic_gc():
    """Python's cyclic garbage collector paused for one batch: the batch makes hundreds of thousands of
    objects (row tuples, Decimals) and no reference cycles, so the collections it triggered (about one full
    collection per batch, traversing every object of the process) found nothing and cost 8 us a record.
    Reference counting still frees everything; the collector resumes (if it was on) when the batch ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rate_batch(batch_size: int, through_service: bool, record_ids) -> int:
    records = _take_records(batch_size, record_ids)
    if not records:
        return 0
    # Lock order: accounts by primary key, then assets by primary key (as the account services do).
    lock = Account.objects.filter(pk__in={r[R_ACCOUNT] for r in records}).order_by("pk")
    if connection.features.has_select_for_update:
        lock = lock.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    accounts = {row[0]: list(row[1:]) for row in lock.values_list(*ACCOUNT_FIELDS)}
    batch = _Batch(records)
    values = _Values()
    null = values.null
    runs = _Runs()
    if not through_service:  # through the service, the service makes the ids, after the rating
        # Each run's operation and charge ids, reserved now for as many runs as the records can make, so that a
        # balance line names its charge as soon as it is made and the lines go to the database while the rating
        # goes on (the ids of runs that do not happen are left unused, like those of a rolled back insert).
        operation_ids, charge_ids = _reserve_ids(runs.most(records))
    balance_lines = []  # through the service: (line, run), to name the charge once it is made
    with _DeductionWriter() as writer:
        deductions = []
        for n, record in enumerate(records, 1):
            lines, rest, rest_qty = batch.rate(record)
            pk = record[R_PK]
            position = 0
            for position, (source, asset_id, covered, amount, value_used) in enumerate(lines, 1):
                deductions.append((pk, position, source, asset_id, covered, amount, value_used, null))
            if rest > 0:
                run = runs.add(record, rest)
                line = [pk, position + 1, BALANCE, null, _q(rest_qty), rest, ZERO,
                        null if through_service else charge_ids[run.index]]
                deductions.append(line)
                if through_service:
                    balance_lines.append((line, run))
            if n % DEDUCTION_CHUNK == 0 and not through_service:
                writer.write(deductions)
                deductions = []
        if through_service:
            charges = [account_services.charge(actor=None, account=run.account_id, amount=run.amount,
                                               description=_run_description(run), at=run.at).pk for run in runs.runs]
            for line, run in balance_lines:
                line[7] = charges[run.index]
        writer.write(deductions)
    if batch.dirty_hours:
        _upsert_hour_usage(sorted(batch.dirty_hours), batch.used)
    _update(Asset, ("remaining_value",), [(a.pk, a.remaining) for a in sorted(
        batch.dirty_coupons.values(), key=lambda a: a.pk)], casts=("numeric",))
    if runs.runs and not through_service:
        _charge_all(runs.runs, accounts, values, operation_ids, charge_ids)
    return len(records)


class _DeductionWriter:
    """Writes the deduction lines of a batch as the rating makes them.

    On PostgreSQL each chunk of lines is one ``COPY`` run by a thread of its own on the batch's connection, while
    the rating goes on: the server inserts the lines and checks that their usage records and assets exist (one
    check per ``COPY``, migration ``0004``) while Python rates the next records, on the other core. The rating
    makes no query meanwhile; leaving the block waits for the last chunk and raises the first error of a chunk
    (as Django's database error, so that a deadlock is retried like any other). Their charges, written after
    the lines, are checked at the ``COMMIT`` (once per ``COPY``, migration ``0005``). Elsewhere (and with
    ``streaming`` off, which ``bench/bench_rating.py --compare-streaming`` uses to measure what it gains) the
    lines are inserted when the block ends, in one statement (on SQLite their three foreign keys are checked
    at the ``COMMIT``)."""

    streaming = True

    def __init__(self):
        self.rows: list = []
        self.stream = connection.vendor == "postgresql" and self.streaming

    def __enter__(self):
        if self.stream:
            self.sql = _copy_statement(Deduction, DEDUCTION_COLUMNS)
            self.raw = connection.connection
            self.chunks: queue.SimpleQueue = queue.SimpleQueue()
            self.error: BaseException | None = None
            self.stopping = False
            self.thread = threading.Thread(target=self._copy_chunks, name="rating-deductions", daemon=True)
            self.switching = _short_switch_interval()
            self.switching.__enter__()
            try:
                self.thread.start()
            except BaseException:
                self.switching.__exit__(None, None, None)
                raise
        return self

    def write(self, rows: list) -> None:
        """Queue ``rows``; raises at once if a chunk was refused (the transaction failed: rating on would only
        hold its locks longer)."""
        if self.stream:
            self._raise_error()
            if rows:
                self.chunks.put(_copy_data(rows))
        else:
            self.rows.extend(rows)

    def _raise_error(self) -> None:
        if self.error is not None:
            with connection.wrap_database_errors:
                raise self.error

    def _copy_chunks(self) -> None:
        while (data := self.chunks.get()) is not None:
            if self.error is not None or self.stopping:
                continue  # the transaction failed or the rating did: the rest is not sent
            try:
                self._copy_chunk(data)
            except BaseException as exc:  # noqa: BLE001 - handed to the rating's thread
                self.error = exc

    def _copy_chunk(self, data: bytes) -> None:
        with self.raw.cursor() as cursor, cursor.copy(self.sql) as copy:
            copy.write(data)

    def __exit__(self, exc_type, exc, tb):
        if not self.stream:
            if exc_type is None:
                _insert(Deduction, DEDUCTION_COLUMNS, self.rows)
            return False
        self.stopping = exc_type is not None
        self.chunks.put(None)
        try:
            self.thread.join()
        finally:
            self.switching.__exit__(None, None, None)
        if exc_type is None:
            self._raise_error()
        return False


_switching = threading.Lock()
_switching_users = 0
_switching_before = 0.0


@contextmanager
def _short_switch_interval():
    """Python's thread switch interval at 0.5 ms while a ``_DeductionWriter`` runs (restored when the last one
    ends). Its thread needs the interpreter lock to start each chunk's ``COPY`` and to read its result; at the
    default 5 ms the rating thread kept it up to 5 ms each time, twice a chunk, while the server had nothing to
    do (a probe of 100,000 records: the rating waited for the last chunks 1.6 to 1.7 s in all at 5 ms, 1.0 s at
    0.5 ms)."""
    global _switching_users, _switching_before
    with _switching:
        if _switching_users == 0:
            _switching_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switching_before, 0.0005))
        _switching_users += 1
    try:
        yield
    finally:
        with _switching:
            _switching_users -= 1
            if _switching_users == 0:
                sys.setswitchinterval(_switching_before)


@contextmanager
def _cursor():
    """A cursor whose ``timestamptz`` values are read by psycopg's C loader. Django reads them with a loader
    of its own written in Python, to give them the connection's time zone: 7 times slower (75 ms for the
    20,000 datetimes of a batch's records). The session's time zone is UTC (``USE_TZ``), so both give the same
    aware datetimes in UTC; with any other time zone Django's loader is kept."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and connection.timezone_name == "UTC":
            from psycopg.types.datetime import TimestamptzLoader

            cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)  # the C version of it
        yield cursor


def _fetch(queryset) -> list[tuple]:
    """The rows of a ``values_list`` queryset whose fields need no conversion from the database value (no
    JSON), read through ``_cursor``."""
    if connection.vendor != "postgresql":
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _take_records(batch_size: int, record_ids) -> list[tuple]:
    """Take up to ``batch_size`` unrated records (of ``record_ids`` when given) off the rating queue, oldest
    first, as tuples of ``RECORD_FIELDS``. Their ``UsagePending`` rows are deleted in this transaction, so the
    transaction that rates a record is the one that takes it off the queue: if it rolls back, the record is
    queued again; once it commits, nobody can take it again (R-US-7). The wide usage row is only read.

    On PostgreSQL one statement locks the queue rows (skipping those another rater holds), deletes them and
    returns their records. On SQLite the transaction holds the write lock from its start (IMMEDIATE): the
    records are read, then their queue rows deleted."""
    if connection.vendor != "postgresql":
        qs = UsageRecord.objects.filter(pending__isnull=False).order_by("pk")
        if record_ids is not None:
            qs = qs.filter(pk__in=list(record_ids))
        records = list(qs.values_list(*RECORD_FIELDS)[:batch_size])
        UsagePending.objects.filter(pk__in=[r[R_PK] for r in records]).delete()
        return records
    qn = connection.ops.quote_name
    queue, usage = qn(_table(UsagePending)), qn(_table(UsageRecord))
    columns = ", ".join(f"u.{qn(UsageRecord._meta.get_field(f).column)}" for f in ("id", *RECORD_FIELDS[1:]))
    only, params = ("", []) if record_ids is None else (" WHERE usage_record_id = ANY(%s)", [list(record_ids)])
    # The queue rows are deleted by their ctid, read while they are locked (queue rows are never updated, so it
    # cannot change before this transaction ends); the records are read by an index scan over the ids taken
    # (a join let the planner hash the whole usage table).
    with _cursor() as cursor:
        cursor.execute(
            f"WITH taken AS (DELETE FROM {queue} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {queue}{only} "
            f"ORDER BY usage_record_id LIMIT %s FOR UPDATE SKIP LOCKED)) RETURNING usage_record_id) "
            f"SELECT {columns} FROM {usage} u WHERE u.id = ANY(ARRAY(SELECT usage_record_id FROM taken)) "
            f"ORDER BY u.id", [*params, batch_size])
        return cursor.fetchall()


def _upsert_hour_usage(keys: list[tuple[int, object]], used: dict) -> None:
    """Write the per-hour consumption of the batch's assets (R-US-3 to R-US-5) in one statement."""
    qn = connection.ops.quote_name
    table = qn(_table(AssetHourUsage))
    conflict = "ON CONFLICT (asset_id, usage_hour) DO UPDATE SET used = EXCLUDED.used"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"INSERT INTO {table} (asset_id, usage_hour, used) SELECT * FROM "
                           f"unnest(%s::bigint[], %s::timestamptz[], %s::numeric[]) {conflict}",
                           [[k[0] for k in keys], [k[1] for k in keys], [used[k] for k in keys]])
            return
        hour_field = AssetHourUsage._meta.get_field("usage_hour")
        used_field = AssetHourUsage._meta.get_field("used")
        cursor.executemany(f"INSERT INTO {table} (asset_id, usage_hour, used) VALUES (%s, %s, %s) {conflict}",
                           [(k[0], hour_field.get_db_prep_save(k[1], connection),
                             used_field.get_db_prep_save(used[k], connection)) for k in keys])


def rate_pending(*, batch_size: int = DEFAULT_BATCH, through_service: bool = False, record_ids=None) -> int:
    """Rate every unrated record (or those of ``record_ids``), one batch per transaction. Returns how many."""
    total = 0
    while True:
        done = rate_batch(batch_size=batch_size, through_service=through_service, record_ids=record_ids)
        if not done:
            return total
        total += done
