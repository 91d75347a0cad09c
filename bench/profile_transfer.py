"""Where a transfer's time goes: each SQL statement's round trip, timed, and the rest (Python).

    .venv/bin/python bench/profile_transfer.py [--transfers 2000]

One client, on a scratch PostgreSQL database (``eac_bench_profile``) prepared like ``bench_transfers.py``.
Prints, per transfer, the statements sent (BEGIN and COMMIT included) with their mean time, and how much
of the transfer is spent outside the database driver.
"""

import argparse
import sys
import time
import uuid
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402
from bench_transfers import prepare  # noqa: E402

DB = "eac_bench_profile"


def label(sql: str) -> str:
    words = sql.split()
    if "SAVEPOINT" in words[:2]:
        return " ".join(words[:-1]) + " <name>"
    head = " ".join(words[:3])
    if words[0].upper() == "WITH":
        return "WITH ... (data-modifying CTE)"
    if "FOR NO KEY UPDATE" in sql or "FOR UPDATE" in sql:
        return f"{head} ... FOR UPDATE"
    return head[:60]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=2000)
    args = parser.parse_args()
    url = _setup.recreate_database(DB)
    prepare(url, 50)
    import random

    from django.db import connection

    from accounts import services
    from accounts.models import Account, User

    admin = User.objects.select_related("account").get(username="bench-admin")
    pks = list(Account.objects.filter(is_management=False).values_list("pk", flat=True))
    rng = random.Random(1)
    timings: dict[str, list[float]] = defaultdict(list)

    def timer(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings[label(sql)].append(time.perf_counter() - start)

    def one():
        a, b = rng.sample(pks, 2)
        services.transfer_create(actor=admin, payer=a, payee=b, amount=Decimal("1.00"), remark="bench",
                                 idempotency_key=str(uuid.uuid4()))

    for _ in range(200):  # warm up
        one()
    # BEGIN and COMMIT are not cursor executions: time them at the psycopg level.
    raw = connection.connection
    original_commit = raw.commit

    def commit():
        start = time.perf_counter()
        try:
            return original_commit()
        finally:
            timings["COMMIT"].append(time.perf_counter() - start)

    raw.commit = commit
    start = time.perf_counter()
    with connection.execute_wrapper(timer):
        for _ in range(args.transfers):
            one()
    total = time.perf_counter() - start
    raw.commit = original_commit
    n = args.transfers
    print(f"# one transfer, 1 client: {date.today()} on {_setup.machine()}, PostgreSQL, {n} transfers")
    print(f"{'statement':<48} {'per transfer':>12} {'mean µs':>8}")
    in_db = 0.0
    for name, values in sorted(timings.items(), key=lambda kv: -sum(kv[1])):
        in_db += sum(values)
        print(f"{name:<48} {len(values) / n:>12.2f} {sum(values) / len(values) * 1e6:>8.0f}")
    print(f"{'total per transfer (µs)':<48} {'':>12} {total / n * 1e6:>8.0f}")
    print(f"{'  of which statements (incl. BEGIN implied)':<48} {'':>12} {in_db / n * 1e6:>8.0f}")
    print(f"{'  of which Python outside statements':<48} {'':>12} {(total - in_db) / n * 1e6:>8.0f}")
    print(f"transfers per second: {n / total:.0f}")


if __name__ == "__main__":
    main()
