#!/usr/bin/env python
"""Rating throughput (issue 4, R-US-2 to R-US-7): rate 100,000 usage records of 1,000 accounts against 200
shared assets, and print records per second and peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_rating.py
    options: --records 100000 --accounts 1000 --assets 200 --batch-size 10000 --service (the charge service
    per record instead of the batch path, for comparison) --profile FILE (pyinstrument text report of the
    timed part, written to FILE)

It migrates the database, builds a fresh enterprise (its data stays, each run has its own enterprise), runs
``VACUUM ANALYZE`` on the tables the rating reads (PostgreSQL), and times only the rating. Peak memory is the process's peak resident set size during the rating (Linux
``VmHWM``, reset after the set-up); ``tracemalloc`` would slow the run several times.
"""

import argparse
import gc
import os
import random
import resource
import sys
import time
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eac.settings")
os.environ.setdefault("TASKS_BACKEND", "dummy")  # no notification delivery in the timed part

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Sum  # noqa: E402
from django.utils import timezone  # noqa: E402

import _setup  # noqa: E402  (bench/ is on the path when the script runs)
from accounts import services as account_services  # noqa: E402
from accounts.ledger import ledger_differences  # noqa: E402
from accounts.models import Account, LedgerEntry, Operation, User  # noqa: E402
from core.money import round_money  # noqa: E402
from sharing import services  # noqa: E402
from sharing.models import AssetType, Deduction, Grant, ScopeType, UsagePending, UsageRecord  # noqa: E402
from sharing.rating import DEFAULT_BATCH, rate_batch, rate_pending  # noqa: E402

PRODUCTS = ["ecs", "rds", "oss", "nas", "cdn"]
VACUUMED = ["accounts_account", "sharing_usagepending", "sharing_usagerecord", "sharing_asset", "sharing_grant",
            "sharing_assethourusage"]
REGIONS = ["cn-hangzhou", "cn-shanghai"]
TYPES = ["ecs.g7.large", "ecs.c7.xlarge", "ecs.r7.2xlarge"]


def build(args, rng):
    ids = random.Random()  # fresh account IDs each run; the data itself follows the seeded rng
    run = f"{int(time.time()):x}{ids.randrange(1 << 16):04x}"
    company = f"BENCH{run}"[:40]
    ma = Account.objects.create(account_id=f"9{ids.randrange(10**15):015d}", name=f"Bench {run} MA",
                                verified_company_id=company)
    enterprise = account_services.enterprise_enable(actor=None, management_account=ma, name=f"Bench {run}")
    admin = User.objects.create_user(username=f"bench-{run}", password="x", account=ma,
                                     role=User.Role.ENTERPRISE_ADMIN)
    ma.refresh_from_db()
    folder = ma.folder
    accounts = Account.objects.bulk_create([
        Account(account_id=f"8{ids.randrange(10**15):015d}", name=f"Bench {run} {i:04d}", enterprise=enterprise,
                folder=folder, verified_company_id=company) for i in range(args.accounts - 1)])
    accounts = [ma] + accounts
    for account in accounts[: len(accounts) * 2 // 3]:  # two thirds have money; the rest get bills
        account_services.top_up(actor=None, account=account, amount=Decimal(rng.choice(["50.00", "500.00", "5000.00"])))
    now = timezone.now()
    valid_from, valid_to = now - timedelta(days=30), now + timedelta(days=365)
    kinds = ([AssetType.RESERVED_INSTANCE] * 50 + [AssetType.SCU_PACKAGE] * 30 + [AssetType.SAVINGS_PLAN] * 40
             + [AssetType.COUPON] * 80)
    rng.shuffle(kinds)
    kinds = (kinds * (args.assets // len(kinds) + 1))[: args.assets]
    for i, kind in enumerate(kinds):
        owner = rng.choice(accounts)
        extra = {
            AssetType.RESERVED_INSTANCE: {"instance_type": rng.choice(TYPES), "region": rng.choice(REGIONS),
                                          "instance_count": rng.choice([2, 4, 8])},
            AssetType.SCU_PACKAGE: {"capacity_gb": rng.choice(["200", "1000"]), "products": ["oss", "nas"]},
            AssetType.SAVINGS_PLAN: {"hourly_commitment": rng.choice(["1.00", "3.00", "8.00"]),
                                     "discount_rate": rng.choice(["0.1500", "0.2500"]), "products": ["ecs", "rds"]},
            AssetType.COUPON: {"face_value": rng.choice(["20.00", "100.00", "300.00"]),
                               "products": [] if i % 2 else ["ecs", "cdn"]},
        }[kind]
        asset = services.asset_provision(actor=None, owner=owner, asset_type=kind, valid_from=valid_from,
                                         valid_to=valid_to, **extra)
        recipients = [a for a in rng.sample(accounts, k=rng.randint(10, 99)) if a.pk != owner.pk]
        services.share_asset(actor=admin, asset=asset, scope_type=ScopeType.ACCOUNTS, accounts=recipients)
    # Date the grants back a week so that the past two days of usage lie inside them (R-SH-6).
    Grant.objects.filter(asset__owner__enterprise=enterprise).update(effective_from=now - timedelta(days=7))
    hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=48)
    records = []
    for n in range(args.records):
        account = accounts[rng.randrange(len(accounts))]
        product = rng.choice(PRODUCTS)
        instance_type = rng.choice(TYPES) if product == "ecs" else ""
        if product == "ecs":
            quantity, price = Decimal(rng.randint(1, 3)), Decimal("0.680000")
        elif product in ("oss", "nas"):
            quantity, price = Decimal(rng.randint(10, 300)), Decimal("0.000170")
        else:
            quantity, price = Decimal(1), Decimal(rng.choice(["0.35", "1.20", "2.75"]))
        hour = hour0 + timedelta(hours=rng.randrange(48))
        records.append(UsageRecord(record_id=f"B{run}-{n:07d}", account=account, product_code=product,
                                   region=rng.choice(REGIONS), instance_type=instance_type, quantity=quantity,
                                   unit_price=price, amount=round_money(quantity * price), usage_hour=hour,
                                   billed_at=hour + timedelta(minutes=50), created_at=now))
    records.sort(key=lambda r: r.usage_hour)  # billed in time order, as a billing feed delivers them
    UsageRecord.objects.bulk_create(records, batch_size=5000)
    return enterprise


def compare_streaming(args, compared, backend) -> int:
    """Rate the pending records batch by batch, alternating ``_DeductionWriter.streaming`` on and off, so that
    both ways run on the same data under the same load (this VM's speed drifts by a third within minutes)."""
    from sharing import rating

    done, streaming = 0, True
    try:
        while True:
            rating._DeductionWriter.streaming = streaming
            t0, py0, db0 = time.perf_counter(), time.process_time(), backend()
            n = rate_batch(batch_size=args.batch_size)
            if not n:
                return done
            seconds, py, db = time.perf_counter() - t0, time.process_time() - py0, backend() - db0
            count, total, py_total, db_total = compared.get(streaming, (0, 0.0, 0.0, 0.0))
            compared[streaming] = (count + n, total + seconds, py_total + py, db_total + db)
            done += n
            streaming = not streaming
    finally:
        rating._DeductionWriter.streaming = True


def cpu_reference() -> float:
    """Microseconds per loop of a fixed piece of Decimal arithmetic (what ``python -m timeit`` would time): how fast
    this VM's CPU is at the moment, since its speed drifts (1.85 to 3.9 us on the VM of 2026-11-23)."""
    from decimal import Decimal as D

    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(100_000):
            str(D("1.25") * D("3.5") + D("0.01"))
        took = (time.perf_counter() - t0) * 10  # us per loop
        best = took if best is None else min(best, took)
    return best


def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _backend_cpu():
    """A function returning the CPU seconds used so far by this connection's PostgreSQL backend process."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return _setup.backend_cpu(cursor.fetchone()[0])


def _reset_peak_rss() -> float:
    """Reset the process's peak resident set size (Linux: ``clear_refs`` 5), so that the peak read after the
    rating is the rating's and not the set-up's; returns the resident size now, in MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--service", action="store_true", help="charge through accounts.services.charge per record")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", metavar="FILE", help="profile the timed part with pyinstrument into FILE")
    parser.add_argument("--timings", action="store_true", help="print the time spent per kind of SQL statement")
    parser.add_argument("--deduction-chunk", type=int, help="records rated between two writes of deduction lines "
                        "(sharing.rating.DEDUCTION_CHUNK)")
    parser.add_argument("--compare-streaming", action="store_true",
                        help="rate the batches alternately with the deduction lines written while rating (the "
                             "default) and after it, and print the rate of each")
    args = parser.parse_args()
    if args.deduction_chunk:
        from sharing import rating

        rating.DEDUCTION_CHUNK = args.deduction_chunk
    call_command("migrate", verbosity=0)
    UsagePending.objects.all().delete()  # leftovers of a broken run: this run rates its own records only
    rng = random.Random(args.seed)
    started = time.perf_counter()
    enterprise = build(args, rng)
    print(f"database: {connection.vendor}; set-up {time.perf_counter() - started:.1f} s: {args.accounts} accounts, "
          f"{args.assets} shared assets, {args.records} usage records")
    if connection.vendor == "postgresql":
        # Autovacuum is off on the shared benchmark server; in production it runs. Without it every run rated
        # against the dead row versions left by all the runs before (the rating queue, the accounts' balances), so
        # figures drifted with the number of runs made on the database.
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for table in VACUUMED:
                cursor.execute(f"VACUUM ANALYZE {table}")
        print(f"VACUUM ANALYZE of {', '.join(VACUUMED)}: {time.perf_counter() - started:.1f} s")
    ids = UsageRecord.objects.filter(account__enterprise=enterprise).order_by("pk").values_list("pk", flat=True)
    first = list(ids[: args.batch_size])
    counted = []

    def count(execute, sql, params, many, context):
        counted.append(sql)
        return execute(sql, params, many, context)

    # One batch, to show the fixed query count. On PostgreSQL the inserts are COPY statements on the psycopg
    # connection (up to 5: operations, ledger rows, bills, charges, deductions), which this does not count.
    with connection.execute_wrapper(count):
        done = rate_batch(batch_size=args.batch_size, through_service=args.service, record_ids=first)
    queries = len(counted)
    gc.collect()
    rss_before = _reset_peak_rss()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    timings = defaultdict(lambda: [0, 0.0, 0.0])  # count, wall seconds, database backend CPU seconds
    backend = _backend_cpu() if connection.vendor == "postgresql" else lambda: 0.0

    def timing(key, func, *, cpu=True):
        """``func``, adding the count, wall time and (with ``cpu``) backend CPU of its calls to ``timings[key]``;
        ``key`` is a string or a function of the call's arguments."""

        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), backend()
            try:
                return func(*args, **kwargs)
            finally:
                row = timings[key(*args, **kwargs) if callable(key) else key]
                row[0] += 1
                row[1] += time.perf_counter() - t0
                if cpu:
                    row[2] += backend() - c0

        return timed

    timed = timing(lambda execute, sql, *rest: " ".join(sql.split()[:6])[:70],
                   lambda execute, sql, params, many, context: execute(sql, params, many, context))
    if args.timings:
        from sharing import rating

        rating._insert = timing(lambda model, columns, rows: f"COPY/INSERT {model._meta.db_table}", rating._insert)
        writer = rating._DeductionWriter
        # A chunk runs in the writer's thread while the rating makes no query, so the backend's CPU over it is the
        # chunk's; the rating's wait for the last chunks is wall time only (the backend's CPU then is the chunks').
        writer._copy_chunk = timing("COPY sharing_deduction chunks (writer thread, while rating)", writer._copy_chunk)
        writer.__exit__ = timing("(the rating waiting for the writer's last chunks, wall only)", writer.__exit__,
                                 cpu=False)
        connection.commit = timing("COMMIT (deferred checks, WAL flush)", connection.commit)
    db_cpu = backend()
    reference_before = cpu_reference()

    started = time.perf_counter()
    cpu = time.process_time()
    compared = {}
    if args.timings:
        with connection.execute_wrapper(timed):
            done += rate_pending(batch_size=args.batch_size, through_service=args.service)
    elif args.compare_streaming:
        done += compare_streaming(args, compared, backend)
    else:
        done += rate_pending(batch_size=args.batch_size, through_service=args.service)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    db_cpu = backend() - db_cpu
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_text(show_all=False))
    peak_mb = _peak_rss_mb()
    reference_after = cpu_reference()
    if timings:
        print(f"  {'wall s':>7} {'db CPU s':>8} {'count':>6}  statement")
    for key, (n, seconds, db_seconds) in sorted(timings.items(), key=lambda kv: -kv[1][2]):
        print(f"  {seconds:7.2f} {db_seconds:8.2f} {n:6d}  {key}")
    lines = Deduction.objects.filter(usage_record__account__enterprise=enterprise)
    by_source = dict(lines.values_list("source").annotate(s=Sum("amount")).order_by())
    total = UsageRecord.objects.filter(account__enterprise=enterprise).aggregate(s=Sum("amount"))["s"]
    charged = -(Operation.objects.filter(kind=Operation.Kind.CHARGE,
                                         charge__account__enterprise=enterprise).aggregate(s=Sum("external_amount"))["s"]
                or 0)
    print(f"rated {done} records ({args.batch_size} per batch, {queries} queries"
          f"{' + COPYs' if connection.vendor == 'postgresql' and not args.service else ''} for the first batch) "
          f"in {elapsed:.2f} s (+ the first batch): {(done - len(first)) / elapsed:,.0f} records/s")
    rated = done - len(first)
    for streaming, (n, seconds, py, db) in sorted(compared.items(), reverse=True):
        print(f"  deduction lines written {'while rating' if streaming else 'after rating '}: {n} records in "
              f"{seconds:.2f} s, {n / seconds:,.0f} records/s; CPU python {py:.2f} s + backend {db:.2f} s, "
              f"wall / CPU {seconds / (py + db):.2f}")
    if db_cpu:
        print(f"CPU: python {cpu:.2f} s + database backend {db_cpu:.2f} s = {cpu + db_cpu:.2f} s for {rated} records: "
              f"{rated / (cpu + db_cpu):,.0f} records per CPU second (what one core each way sustains without "
              f"other load; load average now {os.getloadavg()[0]:.1f})")
    print(f"CPU reference (Decimal arithmetic, best of 3): {reference_before:.2f} us per loop before the rating, "
          f"{reference_after:.2f} after (lower is a faster CPU)")
    print(f"python process CPU {cpu:.2f} s of {elapsed:.2f} s wall; "
          f"peak memory while rating (VmHWM, reset before): {peak_mb:,.0f} MB (RSS when it started: {rss_before:,.0f} MB)")
    print("paid by: " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())) + f"; usage total {total}; "
          f"charged to balances {charged}")
    assert sum(by_source.values()) == total and by_source.get("balance", 0) == charged
    problems = ledger_differences() if connection.vendor == "postgresql" else []
    print(f"ledger: {'clean' if not problems else problems[:5]} ({LedgerEntry.objects.count()} ledger rows in the db)")


if __name__ == "__main__":
    main()
