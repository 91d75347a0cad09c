#!/usr/bin/env python
"""Export of the account table to .xlsx (R-UAM-4, issue 5 "Performance 3"): the console's export against
django-import-export's default export of the same rows, in one run.

    .venv/bin/python bench/bench_export.py [--sizes 10000,100000] [--no-tracemalloc]

For each size N it builds, in a scratch PostgreSQL database (``eac_bench_export``, dropped and created), one
enterprise with N accounts (``bulk_create``, figures set directly: this is a bench, not a ledger), then:

* **console**: ``GET console:accounts_export`` through Django's test client as the enterprise administrator,
  reading the whole streamed response (``console/resources.py`` + the streaming ``console/xlsx.py`` writer);
* **import-export default**: a plain ``ModelResource`` of ``Account`` with the same 12 columns over the same
  queryset (``selectors.account_table``), ``resource.export(queryset)`` into a ``tablib.Dataset``, then
  django-import-export's ``XLSX`` format (openpyxl), as its admin export action does.

It prints seconds (wall, median of ``--repeat`` for the console), the peak of Python allocations during the
export (``tracemalloc``; the console's download is consumed chunk by chunk, as a client reads it, not joined
in memory; django-import-export's ``export_data`` returns the whole file as bytes, in a separate pass because tracing slows the code) and the peak growth of the process's
resident set (Linux ``VmHWM`` reset before each run), the file size, and the ratios. Both files are opened with
openpyxl's reader and their row counts checked.
"""

import argparse
import gc
import io
import os
import statistics
import sys
import time
import tracemalloc
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402


def _status_kb(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def measure(func):
    """(seconds, peak RSS growth in MB, result) of ``func()``."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - t0
    return seconds, (_status_kb("VmHWM") - before) / 1024, result


def traced_peak_mb(func) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 1024 / 1024
    finally:
        tracemalloc.stop()


def build(n: int):
    """One enterprise with ``n`` accounts (the management account included) in three folders; returns its admin."""
    import random

    from accounts import services
    from accounts.models import Account, Folder, User

    rng = random.Random(n)
    ma = Account.objects.create(account_id=f"9{n:015d}", name="Bench management account",
                                verified_company_id=f"BENCHEXPORT{n}")
    enterprise = services.enterprise_enable(actor=None, management_account=ma, name=f"Bench export {n}")
    ma.refresh_from_db()
    admin = User.objects.create_user(username=f"bench-export-{n}", password="x", account=ma,
                                     role=User.Role.ENTERPRISE_ADMIN)
    root = ma.folder
    folders = [root] + [services.folder_create(actor=admin, parent=root, name=f"Team {i}") for i in range(3)]
    folders = list(Folder.objects.filter(pk__in=[f.pk for f in folders]))
    money = [Decimal(rng.randrange(0, 10_000_000)) / 100 for _ in range(997)]
    rows = []
    for i in range(1, n):
        rows.append(Account(
            account_id=f"8{n // 1000 % 1000:03d}{i:012d}", name=("=SUM(A1)" if i % 1000 == 0 else f"Account {i:06d}"),
            enterprise=enterprise, folder=folders[i % len(folders)], verified_company_id=f"BENCHEXPORT{n}",
            own_cash=money[i % 997], transfer_book_balance=money[(i * 7) % 997], credit_limit=money[(i * 3) % 997],
            outstanding_balance=money[(i * 11) % 997] if i % 4 == 0 else Decimal("0.00"),
            alert_enabled=i % 3 == 0, alert_threshold=money[(i * 5) % 997] if i % 3 == 0 else Decimal("0.00")))
        if len(rows) == 10_000:
            Account.objects.bulk_create(rows)
            rows = []
    Account.objects.bulk_create(rows)
    return admin


def import_export_default(queryset) -> bytes:
    """django-import-export's default: a plain ModelResource -> tablib Dataset -> its XLSX format."""
    from import_export import fields, resources
    from import_export.formats.base_formats import XLSX

    from accounts.models import Account

    class AccountResource(resources.ModelResource):
        # The annotated columns of the table; the rest are model fields.
        available_credit = fields.Field(attribute="available_credit_value", column_name="Available credit")
        cash_balance = fields.Field(attribute="cash_balance_value", column_name="Cash balance")
        overdue = fields.Field(attribute="overdue_amount", column_name="Overdue")
        coupons = fields.Field(attribute="coupons", column_name="Coupons")

        class Meta:
            model = Account
            fields = ("account_id", "name", "folder__name", "available_credit", "cash_balance",
                      "transfer_book_balance", "credit_limit", "outstanding_balance", "overdue", "coupons",
                      "alert_enabled", "alert_threshold")
            export_order = fields

    dataset = AccountResource().export(queryset=queryset)
    return XLSX().export_data(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="console runs per size (median)")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc passes")
    args = parser.parse_args()
    os.environ["DEBUG"] = "0"
    _setup.django_setup(_setup.recreate_database("eac_bench_export"), migrate=True)

    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from openpyxl import load_workbook

    from accounts import selectors

    url = reverse("console:accounts_export")
    print(f"# export: {date.today()} on {_setup.machine()}, {connection.vendor}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'rows':>7} {'writer':<22} {'seconds':>8} {'tracemalloc peak MB':>20} {'RSS growth MB':>14} "
          f"{'file MB':>8}")
    for n in [int(s) for s in args.sizes.split(",")]:
        t0 = time.perf_counter()
        admin = build(n)
        built = time.perf_counter() - t0
        client = Client()
        client.force_login(admin)

        def console(keep: bool = False):
            """The streamed download, consumed chunk by chunk like a client would; kept only to be checked."""
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            kept = io.BytesIO() if keep else None
            size = 0
            for chunk in response.streaming_content:
                size += len(chunk)
                if kept is not None:
                    kept.write(chunk)
            return kept.getvalue() if keep else size

        def theirs() -> bytes:
            return import_export_default(selectors.account_table(admin.account.enterprise))

        console()  # warm up (imports, first query plans)
        runs = [measure(console) for _ in range(args.repeat)]
        ours_s = statistics.median(r[0] for r in runs)
        ours_rss = max(r[1] for r in runs)
        ours_file = console(keep=True)
        their_s, their_rss, their_file = measure(theirs)
        ours_mem = their_mem = float("nan")
        if not args.no_tracemalloc:
            ours_mem = traced_peak_mb(console)
            their_mem = traced_peak_mb(theirs)
        for name, data in (("console", ours_file), ("import-export default", their_file)):
            sheet = load_workbook(io.BytesIO(data), read_only=True).active
            count = sum(1 for _ in sheet.iter_rows(values_only=True))
            assert count == n + 1, (name, count)  # the header and one row per account
        print(f"{n:>7} {'console':<22} {ours_s:>8.2f} {ours_mem:>20.1f} {ours_rss:>14.1f} "
              f"{len(ours_file) / 1e6:>8.1f}")
        print(f"{n:>7} {'import-export default':<22} {their_s:>8.2f} {their_mem:>20.1f} {their_rss:>14.1f} "
              f"{len(their_file) / 1e6:>8.1f}")
        print(f"{n:>7} speed-up {their_s / ours_s:.1f}x, tracemalloc peak ratio {their_mem / ours_mem:.0f}x "
              f"(accounts built in {built:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
