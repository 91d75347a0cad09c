#!/usr/bin/env python
"""What the database server spends to write deduction lines and check their references (issue 5, Performance 4):
the server CPU of writing N lines in ``COPY`` chunks, as the rating does, and of the checks the ``COMMIT`` runs,
on the real ``sharing_deduction`` table of each database given, rounds alternating between the databases, every
round rolled back. It compares the ways a line's usage record, asset and charge are checked, which live in the
schema (migrations ``sharing/0004`` and ``0005``), so each way needs a database of its own:

    for db in eac_lines_0003 eac_lines_0004 eac_lines_0005; do
        psql postgres://postgres@127.0.0.1:5432/postgres -c "CREATE DATABASE $db"
        DEBUG=0 DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db .venv/bin/python bench/bench_rating.py
    done
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/eac_lines_0003 .venv/bin/python manage.py migrate sharing 0003
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/eac_lines_0004 .venv/bin/python manage.py migrate sharing 0004
    .venv/bin/python bench/bench_deduction_lines.py eac_lines_0003 eac_lines_0004 eac_lines_0005

The lines written are the latest N of each database (those ``bench_rating.py`` wrote: the same mix of balance and
asset lines), under positions of their own. Server CPU is read from ``/proc`` for the connection's backend (the
server runs on this machine), so the Python of this script is not in it; it is steadier than the rating's wall
time on a VM whose speed changes from one minute to the next.
"""

import argparse
import statistics
import time

import psycopg

import _setup

COLUMNS = "position, source, covered_quantity, amount, asset_value_used, asset_id, charge_id, usage_record_id"


def schema(cursor) -> str:
    cursor.execute("SELECT string_agg(confrelid::regclass::text, ', ' ORDER BY confrelid::regclass::text) "
                   "FROM pg_constraint WHERE conrelid = 'sharing_deduction'::regclass AND contype = 'f'")
    keys = cursor.fetchone()[0] or "none"
    cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sharing_deduction'::regclass "
                   "AND NOT tgisinternal")
    return f"foreign keys: {keys}; triggers on the lines: {cursor.fetchone()[0]}"


def chunks_of(cursor, lines: int, chunk: int) -> list[str]:
    cursor.execute(f"SELECT {COLUMNS} FROM sharing_deduction ORDER BY id DESC LIMIT %s", [lines])
    rows = cursor.fetchall()
    if len(rows) < lines:
        raise SystemExit(f"only {len(rows)} lines in the database: run bench/bench_rating.py in it first")

    def text(value):
        return r"\N" if value is None else str(value)

    offset = 1000  # positions no line has, so that (usage record, position) stays unique
    return ["".join("\t".join(text(v) for v in (row[0] + offset, *row[1:])) + "\n" for row in rows[i:i + chunk])
            for i in range(0, len(rows), chunk)]


def one_round(connection, chunks) -> tuple[float, float, float]:
    """Server CPU of the COPYs, of the COMMIT's checks, and the wall time of both; rolled back."""
    backend_cpu = _setup.backend_cpu(connection.info.backend_pid)
    with connection.cursor() as cursor:
        cpu0, wall0 = backend_cpu(), time.perf_counter()
        for data in chunks:
            with cursor.copy(f"COPY sharing_deduction ({COLUMNS}) FROM STDIN") as copy:
                copy.write(data)
        cpu1 = backend_cpu()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what the COMMIT would check, now
        cpu2, wall2 = backend_cpu(), time.perf_counter()
    connection.rollback()
    return cpu1 - cpu0, cpu2 - cpu1, wall2 - wall0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("databases", nargs="+", help="database names on the server below")
    parser.add_argument("--server", default=_setup.PG)
    parser.add_argument("--lines", type=int, default=90_000)
    parser.add_argument("--chunk", type=int, default=2_500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    connections, chunks = {}, {}
    for name in args.databases:
        connection = psycopg.connect(f"{args.server}/{name}")
        with connection.cursor() as cursor:
            print(f"{name}: {schema(cursor)}")
            chunks[name] = chunks_of(cursor, args.lines, args.chunk)
        connection.rollback()
        connections[name] = connection
    results = {name: [] for name in args.databases}
    for _ in range(args.rounds):
        for name in args.databases:
            results[name].append(one_round(connections[name], chunks[name]))
    print(f"\n{args.lines:,} lines in COPYs of {args.chunk:,}, {args.rounds} rounds alternating, on "
          f"{_setup.machine()}; medians (server CPU s; min to max in brackets)")
    print(f"{'database':<28} {'COPY':>18} {'COMMIT checks':>18} {'both':>8} {'wall':>8}")
    for name, rounds in results.items():
        copies, checks, walls = zip(*rounds)
        both = [copy + check for copy, check, _ in rounds]
        print(f"{name:<28} {cell(copies):>18} {cell(checks):>18} {statistics.median(both):>8.2f} "
              f"{statistics.median(walls):>8.2f}")


def cell(values) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
