"""Rating: what pays for each usage record (R-US-2 to R-US-7).

A batch of unrated records is rated in one transaction with a fixed number of queries, whatever its size:
the records (locked), their accounts (locked, by primary key), the candidate assets (locked, by primary
key), their grants and their per-hour consumption, then one bulk write per table. Records are rated in
record order (primary key), so a savings plan's hourly commitment is used up in that order (R-US-5).

Per record, in the order of R-US-2: reserved instances, SCU packages, savings plans, coupons, then the
account's balance (R-MON-5). Within a type the account's own assets come before shared ones, then the one
that expires first. A shared asset counts only when a grant of the account contains the usage hour
(R-SH-6, R-SH-7); an owned asset needs no grant. Everything is computed exactly in ``Decimal``; money is
rounded to the cent once, where it is recorded, with the parts split so they sum exactly to the record's
amount (``core.money.split_exact``).

The balance is charged either through ``accounts.services.charge`` (``through_service=True``: the
reference) or by the batch path below, which writes exactly the rows that service writes (Operation of kind
charge with ``external_amount = -amount``, LedgerEntry rows, Charge, Bill) and runs the same alert
evaluation, in bulk. Tests hold that both give identical balances and a clean ledger.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Bill, Charge, LedgerEntry, Operation
from core.db import atomic_service
from core.money import ZERO, round_money, split_exact

from .models import DEDUCTION_ORDER, Asset, AssetHourUsage, AssetType, Deduction, Grant, UsageRecord

QUANTUM = Decimal("0.000001")
TYPE_RANK = {t.value: i for i, t in enumerate(DEDUCTION_ORDER)}
DEFAULT_BATCH = 1000


def _q(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM)


@dataclass
class _Candidate:
    asset: Asset
    own: bool
    intervals: list = field(default_factory=list)  # (from, to or None) for shared assets

    def applies_at(self, hour) -> bool:
        a = self.asset
        if not (a.valid_from <= hour < a.valid_to):
            return False
        if self.own:
            return True
        return any(start <= hour and (end is None or hour < end) for start, end in self.intervals)

    def sort_key(self):
        return (TYPE_RANK[self.asset.asset_type], not self.own, self.asset.valid_to, self.asset.pk)


def _matches(asset: Asset, record: UsageRecord) -> bool:
    kind = asset.asset_type
    if kind == AssetType.RESERVED_INSTANCE:
        return bool(record.instance_type) and asset.instance_type == record.instance_type \
            and asset.region == record.region
    if kind in (AssetType.SCU_PACKAGE, AssetType.SAVINGS_PLAN):
        return record.product_code in asset.products
    return not asset.products or record.product_code in asset.products


class _Batch:
    """In-memory state of one batch: candidates per account, per-hour consumption, coupons touched."""

    def __init__(self, records):
        self.records = records
        account_ids = {r.account_id for r in records}
        hours = {r.usage_hour for r in records}
        lo, hi = min(hours), max(hours)
        grants = list(Grant.objects.filter(account_id__in=account_ids, effective_from__lte=hi)
                      .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=lo))
                      .values_list("asset_id", "account_id", "effective_from", "effective_to"))
        granted_ids = {g[0] for g in grants}
        assets = list(Asset.objects.filter(Q(owner_id__in=account_ids) | Q(pk__in=granted_ids),
                                           status=Asset.Status.ACTIVE, valid_from__lte=hi, valid_to__gt=lo)
                      .select_for_update().order_by("pk"))
        by_id = {a.pk: a for a in assets}
        self.candidates: dict[int, list[_Candidate]] = defaultdict(list)
        shared: dict[tuple[int, int], _Candidate] = {}
        for asset in assets:
            if asset.owner_id in account_ids:
                self.candidates[asset.owner_id].append(_Candidate(asset, True))
        for asset_id, account_id, start, end in grants:
            asset = by_id.get(asset_id)
            if asset is None or asset.owner_id == account_id:
                continue
            key = (asset_id, account_id)
            if key not in shared:
                shared[key] = _Candidate(asset, False)
                self.candidates[account_id].append(shared[key])
            shared[key].intervals.append((start, end))
        for items in self.candidates.values():
            items.sort(key=_Candidate.sort_key)
        hourly_ids = [a.pk for a in assets if a.asset_type != AssetType.COUPON]
        self.used: dict[tuple[int, object], Decimal] = {}
        if hourly_ids:
            for row in AssetHourUsage.objects.filter(asset_id__in=hourly_ids, usage_hour__in=hours).values_list(
                    "asset_id", "usage_hour", "used"):
                self.used[(row[0], row[1])] = row[2]
        self.dirty_hours: set = set()
        self.dirty_coupons: dict[int, Asset] = {}

    def rate(self, record: UsageRecord) -> tuple[list[dict], Decimal]:
        """The deduction lines of ``record`` (without the balance line) and the amount left for the balance."""
        hour = record.usage_hour
        price = record.unit_price
        q_rem = record.quantity
        parts = []  # exact: source, asset, covered quantity, pay-as-you-go value, asset value used
        candidates = [c for c in self.candidates.get(record.account_id, ()) if c.applies_at(hour)
                      and _matches(c.asset, record)]
        # R-US-3, R-US-4: instance-hours / GB per hour, shared by all the accounts together.
        for c in candidates:
            asset = c.asset
            if asset.asset_type not in (AssetType.RESERVED_INSTANCE, AssetType.SCU_PACKAGE) or q_rem <= 0:
                continue
            capacity = Decimal(asset.instance_count) if asset.asset_type == AssetType.RESERVED_INSTANCE \
                else asset.capacity_gb
            key = (asset.pk, hour)
            left = capacity - self.used.get(key, ZERO)
            if left <= 0:
                continue
            covered = min(q_rem, left)
            self.used[key] = self.used.get(key, ZERO) + covered
            self.dirty_hours.add(key)
            parts.append([asset.asset_type, asset, covered, covered * price, ZERO])
            q_rem -= covered
        # R-US-5: the hour's unused commitment R pays C x (1 - d).
        payg = q_rem * price
        for c in candidates:
            asset = c.asset
            if asset.asset_type != AssetType.SAVINGS_PLAN or payg <= 0:
                continue
            key = (asset.pk, hour)
            left = asset.hourly_commitment - self.used.get(key, ZERO)
            if left <= 0:
                continue
            cost = payg * (1 - asset.discount_rate)
            if left >= cost:
                use, covered_value, covered_qty = round_money(cost), payg, q_rem
            else:
                share = left / cost
                use, covered_value, covered_qty = left, payg * share, q_rem * share
            self.used[key] = self.used.get(key, ZERO) + use
            self.dirty_hours.add(key)
            parts.append([AssetType.SAVINGS_PLAN, asset, covered_qty, covered_value, use])
            payg -= covered_value
            q_rem -= covered_qty
        # Money is recorded once, in cents, split so that the parts sum exactly to the record's amount.
        cents = split_exact(record.amount, [p[3] for p in parts] + [payg])
        lines = [{"source": p[0], "asset": p[1], "covered_quantity": _q(p[2]), "amount": cents[i],
                  "asset_value_used": p[4]} for i, p in enumerate(parts)]
        rest = cents[-1]
        # R-US-6: coupons pay up to their remaining value.
        if rest > 0:
            start, start_qty = rest, q_rem
            for c in candidates:
                asset = c.asset
                if asset.asset_type != AssetType.COUPON or rest <= 0 or asset.remaining_value <= 0:
                    continue
                use = min(asset.remaining_value, rest)
                asset.remaining_value -= use
                self.dirty_coupons[asset.pk] = asset
                lines.append({"source": AssetType.COUPON, "asset": asset, "amount": use, "asset_value_used": use,
                              "covered_quantity": _q(start_qty * use / start)})
                rest -= use
                q_rem -= start_qty * use / start
        self.rest_quantity = q_rem
        return lines, rest

    def save_state(self) -> None:
        if self.dirty_hours:
            AssetHourUsage.objects.bulk_create(
                [AssetHourUsage(asset_id=k[0], usage_hour=k[1], used=self.used[k]) for k in sorted(
                    self.dirty_hours, key=lambda k: (k[0], k[1]))],
                update_conflicts=True, unique_fields=["asset", "usage_hour"], update_fields=["used"])
        if self.dirty_coupons:
            Asset.objects.bulk_update(list(self.dirty_coupons.values()), ["remaining_value"])


def _description(record: UsageRecord) -> str:
    return f"Usage {record.record_id}: {record.product_code} {record.region} {record.usage_hour:%Y-%m-%d %H:00}"[:200]


def _charges_batch(items: list[tuple[UsageRecord, Decimal]], accounts: dict[int, Account]) -> list[Charge]:
    """Charge each (record, amount) to its account's balance, exactly as ``accounts.services.charge`` would
    (R-MON-5), in bulk: one insert per table and one update of the accounts, whatever the number of charges."""
    operations, plans = [], []
    for record, amount in items:
        account = accounts[record.account_id]
        at = record.billed_at
        from_book = min(account.transfer_book_balance, amount)
        from_cash = min(account.own_cash, amount - from_book)
        billed = amount - from_book - from_cash
        account.transfer_book_balance -= from_book
        account.own_cash -= from_cash
        account.outstanding_balance += billed
        # The same alert evaluation the service runs after each charge (R-AL-3); no query unless one fires.
        account_services._evaluate_alerts([account], at=at)
        description = _description(record)
        operations.append(Operation(kind=Operation.Kind.CHARGE, external_amount=-amount, actor=None,
                                    description=description, created_at=at))
        plans.append((account, amount, from_book, from_cash, billed, description, at))
    Operation.objects.bulk_create(operations)
    entries, bills, charges = [], [], []
    for operation, (account, amount, from_book, from_cash, billed, description, at) in zip(operations, plans):
        for bucket, delta in (("transfer_book", -from_book), ("own_cash", -from_cash), ("outstanding", billed)):
            if delta != 0:
                entries.append(LedgerEntry(operation=operation, account=account, bucket=bucket, amount=delta,
                                           created_at=at))
        if billed > 0:
            bills.append(Bill(account=account, operation=operation, amount=billed, unpaid_amount=billed,
                              description=description, created_at=at,
                              due_date=timezone.localdate(at) + timedelta(days=settings.EAC_BILL_DUE_DAYS)))
        charges.append(Charge(account=account, operation=operation, amount=amount, from_transfer_book=from_book,
                              from_own_cash=from_cash, billed=billed, description=description, created_at=at))
    LedgerEntry.objects.bulk_create(entries)
    if bills:
        Bill.objects.bulk_create(bills)
    Charge.objects.bulk_create(charges)
    touched = {plan[0].pk: plan[0] for plan in plans}
    _update_balances(list(touched.values()))
    return charges


BALANCE_COLUMNS = ("own_cash", "transfer_book_balance", "outstanding_balance")


def _update_balances(accounts: list[Account]) -> None:
    """One ``UPDATE ... FROM (VALUES ...)`` for the new balances of every account of the batch.

    ``bulk_update`` would build a CASE expression per account and column, which costs more Python time than
    the whole rating of the batch. The VALUES columns are ``column1``, ``column2``... on both PostgreSQL and
    SQLite (3.33+)."""
    if not accounts:
        return
    table = connection.ops.quote_name(Account._meta.db_table)
    columns = [connection.ops.quote_name(Account._meta.get_field(f).column) for f in BALANCE_COLUMNS]
    row = "(CAST(%s AS BIGINT), " + ", ".join(["CAST(%s AS NUMERIC)"] * len(columns)) + ")"
    assignments = ", ".join(f"{col} = v.column{i + 2}" for i, col in enumerate(columns))
    sql = (f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row] * len(accounts))}) AS v "
           f"WHERE {table}.{connection.ops.quote_name('id')} = v.column1")
    params = []
    for account in accounts:
        params.append(account.pk)
        params.extend(getattr(account, f) for f in BALANCE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@atomic_service
def rate_batch(*, batch_size: int = DEFAULT_BATCH, through_service: bool = False, record_ids=None) -> int:
    """Rate up to ``batch_size`` unrated records (oldest first); returns how many. Rated records are skipped,
    so rating a record twice changes nothing (R-US-7)."""
    qs = UsageRecord.objects.filter(rated_at__isnull=True).order_by("pk")
    if record_ids is not None:
        qs = qs.filter(pk__in=list(record_ids))
    if connection.vendor == "postgresql":
        qs = qs.select_for_update(skip_locked=True)
    records = list(qs[:batch_size])
    if not records:
        return 0
    now = timezone.now()
    # Lock order: accounts by primary key, then assets by primary key (as the account services do).
    accounts = {a.pk: a for a in Account.objects.select_for_update(of=("self",)).select_related("enterprise")
                .filter(pk__in={r.account_id for r in records}).order_by("pk")}
    batch = _Batch(records)
    deductions, to_charge = [], []
    for record in records:
        lines, rest = batch.rate(record)
        for position, line in enumerate(lines, 1):
            deductions.append(Deduction(usage_record=record, position=position, **line))
        if rest > 0:
            balance_line = Deduction(usage_record=record, position=len(lines) + 1, source=Deduction.Source.BALANCE,
                                     amount=rest, covered_quantity=_q(batch.rest_quantity))
            deductions.append(balance_line)
            to_charge.append((record, rest, balance_line))
    batch.save_state()
    if to_charge:
        if through_service:
            charges = []
            for record, amount, _line in to_charge:
                charges.append(account_services.charge(actor=None, account=record.account_id, amount=amount,
                                                       description=_description(record), at=record.billed_at))
        else:
            charges = _charges_batch([(r, a) for r, a, _ in to_charge], accounts)
        for (_record, _amount, line), charge in zip(to_charge, charges):
            line.charge = charge
    Deduction.objects.bulk_create(deductions)
    UsageRecord.objects.filter(pk__in=[r.pk for r in records]).update(rated_at=now)
    return len(records)


def rate_pending(*, batch_size: int = DEFAULT_BATCH, through_service: bool = False, record_ids=None) -> int:
    """Rate every unrated record (or those of ``record_ids``), one batch per transaction. Returns how many."""
    total = 0
    while True:
        done = rate_batch(batch_size=batch_size, through_service=through_service, record_ids=record_ids)
        if not done:
            return total
        total += done
