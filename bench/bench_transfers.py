"""Transfers per second through the service layer and over HTTP, side by side with pgbench's tpcb-like workload.

    .venv/bin/python bench/bench_transfers.py [--seconds 10] [--clients 1,4,8] [--accounts 50] [--rounds 1] [--no-http]

Service: each client is a process (no shared GIL) doing ``accounts.services.transfer_create`` between random
pairs of funded accounts, with all its bookkeeping (ledger, pair, record, audit, alert evaluation, idempotency
key). HTTP: gunicorn (``eac.wsgi``, DEBUG off, as many sync workers as clients) serves the console; each client
is a process with its own signed-in session posting the transfer drawer's confirm step
(``POST /accounts/<payee>/transfer/`` with ``step=confirm``, the payer, the amount, a remark, a new idempotency
key and the CSRF token, as HTMX sends it), and counts the transfers the console confirmed (``HX-Trigger:
accountChanged``). In both, the clients start together once all are set up (Django imported, signed in), as
pgbench reports its tps without its connection time. So the HTTP figure includes the session and CSRF checks, the form, the service and the
re-rendered drawer. pgbench runs its built-in tpcb-like script (three updates, a select and an insert) on the
same server with the same client counts. Prints all three and the service/pgbench ratio.
"""

import argparse
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

DB = "eac_bench_transfers"


def prepare(url: str, n_accounts: int) -> None:
    _setup.django_setup(url, migrate=True)
    from decimal import Decimal

    from accounts import services
    from accounts.models import Account, User

    ma = Account.objects.create(account_id="9000000000000000", name="Bench MA", verified_company_id="BENCHCO")
    ent = services.enterprise_enable(actor=None, management_account=ma, name="Bench")
    ma.refresh_from_db()
    User.objects.create_user("bench-admin", password="x", account=ma, role=User.Role.ENTERPRISE_ADMIN)
    for i in range(n_accounts):
        acc = Account.objects.create(account_id=f"{9000000000000001 + i}", name=f"Bench {i}", enterprise=ent,
                                     folder=ma.folder, verified_company_id="BENCHCO")
        services.top_up(actor=None, account=acc, amount=Decimal("100000000.00"))


def client(url: str, seconds: float, counter, seed: int, use_keys: bool, ready) -> None:
    _setup.django_setup(url)
    import random
    from decimal import Decimal

    from django.db import connection

    from accounts import services
    from accounts.models import Account, User

    admin = User.objects.select_related("account").get(username="bench-admin")
    pks = list(Account.objects.filter(is_management=False).values_list("pk", flat=True))
    rng = random.Random(seed)
    done = 0
    ready.wait()  # every client set up (Django imported, connected): the run starts for all at once
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a, b = rng.sample(pks, 2)
        services.transfer_create(actor=admin, payer=a, payee=b, amount=Decimal("1.00"), remark="bench",
                                 idempotency_key=str(uuid.uuid4()) if use_keys else None)
        done += 1
    with counter.get_lock():
        counter.value += done
    connection.close()


def run_service(url: str, clients: int, seconds: float) -> float:
    counter = mp.Value("q", 0)
    ready = mp.Barrier(clients)
    procs = [mp.Process(target=client, args=(url, seconds, counter, i, True, ready)) for i in range(clients)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return counter.value / seconds


def http_client(base: str, seconds: float, counter, failures, seed: int, pks: list[int], ready) -> None:
    import random

    from bank import Session, _input_value

    session = Session(base)
    page = session.request("GET", "/login/")
    login = session.request("POST", "/login/", {"csrfmiddlewaretoken": _input_value(page.body, "csrfmiddlewaretoken"),
                                                "username": "bench-admin", "password": "x"})
    if login.status != 302:
        raise RuntimeError(f"bench-admin could not sign in: {login.status}")
    token = _input_value(session.request("GET", f"/accounts/{pks[0]}/transfer/").body, "csrfmiddlewaretoken")
    rng = random.Random(seed)
    done = failed = 0
    ready.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        payer, payee = rng.sample(pks, 2)
        response = session.request("POST", f"/accounts/{payee}/transfer/", {
            "csrfmiddlewaretoken": token, "idempotency_key": str(uuid.uuid4()), "type": "transfer", "step": "confirm",
            "payer": str(payer), "amount": "1.00", "remark": "bench"}, htmx=True)
        if response.status == 200 and response.headers.get("HX-Trigger") == "accountChanged":
            done += 1
        else:
            failed += 1
    with counter.get_lock():
        counter.value += done
    with failures.get_lock():
        failures.value += failed


def run_http(url: str, clients: int, seconds: float, pks: list[int]) -> float:
    from bank import free_port, start_server, stop_server

    port = free_port()
    log = Path("/tmp") / f"bench_transfers_gunicorn_{os.getpid()}.log"
    server = start_server(url, port, log, workers=clients)
    try:
        counter, failures, ready = mp.Value("q", 0), mp.Value("q", 0), mp.Barrier(clients)
        procs = [mp.Process(target=http_client, args=(f"http://127.0.0.1:{port}", seconds, counter, failures, i, pks,
                                                      ready))
                 for i in range(clients)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        stop_server(server)
    if failures.value:
        raise RuntimeError(f"{failures.value} HTTP transfers were not confirmed; see {log}")
    return counter.value / seconds


def account_pks(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM accounts_account WHERE NOT is_management ORDER BY id")]


def init_pgbench(name: str) -> str:
    url = _setup.recreate_database(name)
    subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    return url


def run_pgbench(url: str, clients: int, seconds: float) -> float:
    out = subprocess.run(["pgbench", "-n", "-b", "tpcb-like", "-c", str(clients), "-j", str(clients),
                          "-T", str(int(seconds)), url], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate service and pgbench runs this many times per client count and report "
                             "medians (on a shared machine, load changes between runs)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP column")
    parser.add_argument("--database", default=DB, help="name of the scratch database of the service runs "
                        "(pgbench's is the same name with _pgbench)")
    args = parser.parse_args()
    url = _setup.recreate_database(args.database)
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=prepare, args=(url, args.accounts))
    p.start(); p.join()
    pgbench_url = init_pgbench("eac_bench_pgbench" if args.database == DB else f"{args.database}_pgbench")
    print(f"# transfers: {date.today()} on {_setup.machine()}, PostgreSQL, {args.accounts} accounts, "
          f"{args.seconds:.0f}s per run, {args.rounds} round(s), medians")
    pks = account_pks(url)
    print(f"{'clients':>7} {'service tps':>12} {'HTTP tps':>9} {'pgbench tps':>12} {'ratio':>6}  ratio per round "
          f"(service / pgbench)")
    for clients in [int(c) for c in args.clients.split(",")]:
        services, https, pgbenches = [], [], []
        for _ in range(args.rounds):
            services.append(run_service(url, clients, args.seconds))
            if not args.no_http:
                https.append(run_http(url, clients, args.seconds, pks))
            pgbenches.append(run_pgbench(pgbench_url, clients, args.seconds))
        ratios = [s / p for s, p in zip(services, pgbenches)]
        http = f"{statistics.median(https):>9.0f}" if https else f"{'-':>9}"
        print(f"{clients:>7} {statistics.median(services):>12.0f} {http} {statistics.median(pgbenches):>12.0f} "
              f"{statistics.median(ratios):>6.2f}  {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)


if __name__ == "__main__":
    # The service clients run as a production process would (the HTTP server runs with DEBUG off too).
    os.environ.setdefault("DEBUG", "0")
    mp.set_start_method("spawn")
    main()
