"""Server time of the unified account management table vs Django's admin changelist, same accounts, same columns.

    .venv/bin/python bench/bench_table.py [--accounts 10000] [--repeat 15] [--sqlite] [--database eac_bench_table]

Loads the demo enterprise with N accounts into a scratch database (PostgreSQL by default), then times, in one
run, GET of the console table at 50 and 500 rows per page (``size``) and GET of the admin changelist of the same
accounts showing the same columns (list_per_page 50 and 500), through Django's test client (no network, server time
only), each sorted by its available credit column, highest first (the console by the figure itself, the admin by
own cash, its column's ``ordering``). The two are requested alternately, so both see the same load on a shared
machine; the first request of each checks how many rows it really shows. Prints median milliseconds,
SQL queries per request and the ratio.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sqlite", action="store_true", help="use a scratch SQLite file instead of PostgreSQL")
    parser.add_argument("--database", default="eac_bench_table", help="name of the scratch PostgreSQL database")
    args = parser.parse_args()
    if args.sqlite:
        path = "/tmp/eac_bench_table.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        url = f"sqlite:///{path}"
    else:
        url = _setup.recreate_database(args.database)
    os.environ["DEBUG"] = "0"
    _setup.django_setup(url, migrate=True)

    from django.contrib import admin
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from accounts.demo import seed_demo
    from accounts.models import Account, User

    from bench.admin_changelist import register_bench_admin  # noqa: E402

    started = time.monotonic()
    seed_demo(accounts=args.accounts)
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would have after a bulk load
        cursor.execute("ANALYZE")
    print(f"# account table: {date.today()} on {_setup.machine()}, {connection.vendor}, "
          f"{args.accounts} accounts (seeded in {time.monotonic() - started:.0f}s), median of {args.repeat}")
    register_bench_admin(admin.site)

    client = Client()
    client.force_login(User.objects.get(username="admin"))
    staff = Client()
    staff.force_login(User.objects.get(username="manager"))

    def first_get(c, url, row_marker, rows):
        """One untimed request: status, query count, and the number of rows really shown."""
        with CaptureQueriesContext(connection) as ctx:
            response = c.get(url)
        assert response.status_code == 200, (url, response.status_code)
        shown = response.content.count(row_marker)
        assert shown == rows, f"{url} shows {shown} rows, not {rows}"
        return len(ctx.captured_queries)

    def timed_get(c, url):
        t0 = time.perf_counter()
        response = c.get(url)
        elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200
        return elapsed

    print(f"{'rows':>5} {'console ms':>11} {'queries':>8} {'admin ms':>9} {'queries':>8} {'speed-up':>9}")
    for rows in (50, 500):
        ours_url = f"{reverse('console:accounts')}?size={rows}&sort=-available_credit"
        theirs_url = f"/backoffice/accounts/benchaccount/?o=-2&per_page={rows}"
        q1 = first_get(client, ours_url, b"<tr data-account=", rows)
        q2 = first_get(staff, theirs_url, b'class="action-select"', rows)
        ours, theirs = [], []
        for _ in range(args.repeat):  # alternate, so that both see the same load on a shared machine
            ours.append(timed_get(client, ours_url))
            theirs.append(timed_get(staff, theirs_url))
        ours, theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{rows:>5} {ours:>11.1f} {q1:>8} {theirs:>9.1f} {q2:>8} {theirs / ours:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
