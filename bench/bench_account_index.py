"""What the account table's available credit index costs the transfer path: transfers per second with and without it.

    .venv/bin/python bench/bench_account_index.py [--seconds 5] [--clients 1,4] [--rounds 4] [--database eac_bench_index]

``account_available_credit_idx`` (accounts/models.py) is on an expression of the balance columns, so every
balance update must write index entries and can no longer be a HOT update. This prepares two scratch databases
exactly as bench_transfers.py does, drops the index in one of them, and runs bench_transfers.py's service clients
(``transfer_create`` with all its bookkeeping) against each in turn, alternating which goes first, so that both see
the same load on a shared machine. Prints the median transfers per second of each, the median of the per-round
ratios (with / without), and the share of HOT updates PostgreSQL made on accounts_account.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402
from bench_transfers import prepare, run_service  # noqa: E402

INDEX = "account_available_credit_idx"


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-At", "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database", default="eac_bench_index")
    args = parser.parse_args()
    urls = {}
    for variant in ("with", "without"):
        urls[variant] = _setup.recreate_database(f"{args.database}_{variant}")
        p = mp.get_context("spawn").Process(target=prepare, args=(urls[variant], args.accounts))
        p.start(); p.join()
    psql(urls["without"], f"DROP INDEX {INDEX}")
    assert psql(urls["with"], f"SELECT count(*) FROM pg_indexes WHERE indexname = '{INDEX}'") == "1"
    print(f"# available credit index vs transfers: {date.today()} on {_setup.machine()}, PostgreSQL, "
          f"{args.accounts} accounts, {args.seconds:.0f}s per run, {args.rounds} rounds alternated, medians")
    print(f"{'clients':>7} {'with index':>11} {'without':>8} {'with/without':>13}  per round")
    for clients in [int(c) for c in args.clients.split(",")]:
        tps = {"with": [], "without": []}
        for r in range(args.rounds):
            order = ("with", "without") if r % 2 == 0 else ("without", "with")
            for variant in order:
                tps[variant].append(run_service(urls[variant], clients, args.seconds))
        ratios = [w / wo for w, wo in zip(tps["with"], tps["without"])]
        print(f"{clients:>7} {statistics.median(tps['with']):>11.0f} {statistics.median(tps['without']):>8.0f} "
              f"{statistics.median(ratios):>13.2f}  {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)
    for variant, url in urls.items():
        upd, hot = psql(url, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                             "WHERE relname = 'accounts_account'").split("|")
        print(f"# {variant} index: {hot} of {upd} account updates were HOT ({int(hot) / max(int(upd), 1):.0%})")


if __name__ == "__main__":
    os.environ.setdefault("DEBUG", "0")  # the service clients run as production runs them (as bench_transfers.py)
    mp.set_start_method("spawn")
    main()
