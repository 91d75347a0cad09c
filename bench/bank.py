"""Bank test (Jepsen's bank workload) over real HTTP against gunicorn on PostgreSQL, with faults.

    .venv/bin/python bench/bank.py --seconds 60 --clients 16 --faults [--accounts 50] [--db eac_bank_run]

1. A scratch database is created and filled through the services: an enterprise with an effective credit
   control contract, ``--accounts`` funded accounts, the enterprise administrator and an account manager.
2. ``gunicorn eac.wsgi -w 3`` serves it (DEBUG=0, immediate tasks, locmem email).
3. ``--clients`` threads, each with its own cookie jars, log in over the real login forms (CSRF token from
   the page) and for ``--seconds`` do, through the console's drawers (as HTMX does: ``HX-Request``):
   transfers and withdrawals (GET drawer -> idempotency key -> POST review -> POST confirm), credit limit
   changes, alert changes (single and batch); and in the back office, as the account manager, top-ups
   and charges. Keyed forms are sometimes submitted twice with the same key, in a row or at once.
4. ``--faults``: a thread kills some of the database's client connections at random intervals
   (``pg_terminate_backend``), and one gunicorn worker is killed with SIGKILL once.
5. Clients retry a request that failed at the transport level or with a 5xx, with the same body (so the
   same idempotency key), and record what happened. Afterwards the books are checked (see ``verify``).

How a fault-caused 5xx is told from a bug: an attempt's 5xx counts as caused by a fault only when a fault
(a connection kill or the worker kill) happened while that attempt was in flight; and every unhandled
exception the server logged (``django.request`` writes them to gunicorn's stderr) must be a lost
database connection (``OperationalError``/``InterfaceError`` about a terminated or closed connection).
Any other 5xx, any other logged exception, and any unexpected status (403, 404, 400...) is an anomaly.

Exit status 0 when there is no anomaly and every check passed; 1 otherwise. ``--json PATH`` writes the
summary for the pytest test (tests/reliability/test_bank.py).
"""

import argparse
import http.client
import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from html import unescape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

ROOT = _setup.ROOT
PASSWORD = "bank-Secret-2024"
ADMIN, MANAGER = "bank-admin", "bank-manager"
TOTAL_CREDIT = Decimal("100000.00")
INITIAL_FUNDS = Decimal("10000.00")
RETRIES = 10
TIMEOUT = 30

CONNECTION_LOST_PATTERNS = (
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "the connection is closed",
    "connection already closed",
    "consuming input failed",
    "connection is lost",
    "sending query failed",
    "EOF detected",
)


# --------------------------------------------------------------------------------------------------
# Setup through the services
# --------------------------------------------------------------------------------------------------

def prepare(n_accounts: int) -> dict:
    from django.contrib.auth.models import Permission

    from accounts import services
    from accounts.models import Account, User

    company = "91310000MABANK0001"
    ma = Account.objects.create(account_id="8000000000000000", name="Bank management", verified_company_id=company,
                                contact_phone="13800000000", contact_email="ma@bank.example")
    enterprise = services.enterprise_enable(actor=None, management_account=ma, name="Bank test")
    ma.refresh_from_db()
    admin = User.objects.create_user(ADMIN, password=PASSWORD, account=ma, role=User.Role.ENTERPRISE_ADMIN)
    manager = User.objects.create_user(MANAGER, password=PASSWORD, is_staff=True)
    manager.user_permissions.set(Permission.objects.filter(
        content_type__app_label="accounts", codename__in=["view_account", "change_account"]))
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit=TOTAL_CREDIT)
    services.credit_contract_confirm(actor=admin, contract=contract)
    pks = []
    for i in range(n_accounts):
        account = Account.objects.create(
            account_id=f"{8000000000000001 + i}", name=f"Bank {i:02d}", enterprise=enterprise, folder=ma.folder,
            verified_company_id=company, contact_phone="13800000000", contact_email=f"a{i}@bank.example")
        services.top_up(actor=None, account=account, amount=INITIAL_FUNDS)
        pks.append(account.pk)
    return {"enterprise": enterprise.pk, "accounts": pks}


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Response:
    status: int
    headers: dict
    body: str
    attempts: int = 1


class TransportError(Exception):
    pass


class Session:
    """One browser: a cookie jar; redirects are not followed (a 302/303 is a result in itself)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, method: str, path: str, data=None, *, htmx: bool = False) -> Response:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if htmx:
            req.add_header("HX-Request", "true")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
            req.add_header("Referer", self.base + path)
        try:
            with self.opener.open(req, timeout=TIMEOUT) as resp:
                return Response(resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except Exception:  # the connection died while reading the error body
                text = ""
            return Response(exc.code, dict(exc.headers or {}), text)
        except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException) as exc:
            raise TransportError(f"{exc.__class__.__name__}: {exc}") from exc


def _input_value(html: str, name: str) -> str | None:
    for tag in re.findall(r"<input[^>]*>", html):
        if re.search(rf'name="{re.escape(name)}"', tag):
            m = re.search(r'value="([^"]*)"', tag)
            return unescape(m.group(1)) if m else ""
    return None


def _select_values(html: str, name: str) -> list[str]:
    m = re.search(rf'<select[^>]*name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    if not m:
        return []
    return [v for v in re.findall(r'<option value="([^"]*)"', m.group(1)) if v]


_MONEY = re.compile(r"-?\d[\d,]*\.\d{2}")
_ACCOUNT_ID = re.compile(r"\b\d{16}\b")


def _errors(html: str) -> list[str]:
    found = re.findall(r'class="(?:field-error|form-error|errornote)"[^>]*>(.*?)</(?:p|div)>', html, re.S)
    found += re.findall(r'<ul class="errorlist[^"]*"[^>]*><li>(.*?)</li>', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", e)).strip() for e in found if e.strip()]


def reason_of(message: str) -> str:
    """A refusal message without its figures: ``Transferable amount is N; you asked for N (R-TR-2).``"""
    return _ACCOUNT_ID.sub("ID", _MONEY.sub("N", message))


# --------------------------------------------------------------------------------------------------
# The run's shared record
# --------------------------------------------------------------------------------------------------

@dataclass
class Attempt:
    start: float
    end: float
    status: int | None  # None: transport error
    path: str


@dataclass
class Record:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    anomalies: list = field(default_factory=list)
    retries: Counter = field(default_factory=Counter)
    faults: list = field(default_factory=list)  # (monotonic time, kind, detail)
    attempts_5xx: list = field(default_factory=list)
    transport_errors: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)  # idempotency key -> {"op", "outcome", "message", ...}
    double_submits: Counter = field(default_factory=Counter)
    keyed_retried: Counter = field(default_factory=Counter)  # keyed POSTs answered only after a retry
    key_counts: dict = field(default_factory=dict)  # op -> (records in the database, keys answered done)
    payees: set = field(default_factory=set)  # accounts that received a transfer: withdrawals go there
    requests: int = 0

    def anomaly(self, text: str) -> None:
        with self.lock:
            self.anomalies.append(text)

    def fault(self, kind: str, detail: str) -> None:
        with self.lock:
            self.faults.append((time.monotonic(), kind, detail))


class Client:
    def __init__(self, n: int, base: str, record: Record, accounts: list[int], rng: random.Random):
        self.n = n
        self.base = base
        self.record = record
        self.accounts = accounts
        self.rng = rng
        self.admin = Session(base)
        self.manager = Session(base)

    # --- one HTTP call with retries -------------------------------------------------------------

    def call(self, session: Session, method: str, path: str, data=None, *, htmx=False, op="") -> Response:
        """Send until a non-5xx answer; a transport error or 5xx is retried with the same body (same key)."""
        for attempt in range(1, RETRIES + 1):
            start = time.monotonic()
            try:
                response = session.request(method, path, data, htmx=htmx)
            except TransportError as exc:
                end = time.monotonic()
                with self.record.lock:
                    self.record.requests += 1
                    self.record.transport_errors.append(Attempt(start, end, None, path))
                    self.record.retries[f"{op} after transport error"] += 1
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * self.rng.uniform(0.5, 1.0))
                continue
            end = time.monotonic()
            with self.record.lock:
                self.record.requests += 1
            if response.status >= 500:
                with self.record.lock:
                    self.record.attempts_5xx.append(Attempt(start, end, response.status, path))
                    self.record.retries[f"{op} after {response.status}"] += 1
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * self.rng.uniform(0.5, 1.0))
                continue
            response.attempts = attempt
            return response
        raise TransportError(f"{method} {path}: no answer after {RETRIES} attempts")

    def expect(self, response: Response, statuses, what: str) -> bool:
        if response.status in statuses:
            return True
        self.record.anomaly(f"client {self.n}: {what}: unexpected status {response.status}: "
                            f"{_errors(response.body)[:2] or response.body[:200]}")
        return False

    # --- login ----------------------------------------------------------------------------------

    def login(self, session: Session, path: str, username: str) -> None:
        page = self.call(session, "GET", path, op="login")
        token = _input_value(page.body, "csrfmiddlewaretoken")
        data = {"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD}
        if path.startswith("/backoffice/"):
            data["next"] = "/backoffice/"
        response = self.call(session, "POST", path, data, op="login")
        if response.status != 302:
            raise RuntimeError(f"login of {username} failed: {response.status} {_errors(response.body)}")

    # --- outcomes -------------------------------------------------------------------------------

    def refused(self, op: str, messages: list[str]) -> None:
        with self.record.lock:
            self.record.refused[op] += 1
            for message in messages or ["(no message)"]:
                self.record.reasons[f"{op}: {reason_of(message)}"] += 1

    def succeeded(self, op: str) -> None:
        with self.record.lock:
            self.record.done[op] += 1

    def note_key(self, key: str, op: str, outcome: str, message: str = "", **extra) -> None:
        with self.record.lock:
            entry = self.record.keys.setdefault(key, {"op": op, "outcomes": []})
            entry["outcomes"].append((outcome, message))
            entry.update(extra)

    # --- keyed POSTs, sometimes twice -----------------------------------------------------------

    def submit(self, session, path, data, *, htmx, op, key) -> list[Response]:
        """POST once, or twice with the same key (in a row or at once): a double submit."""
        mode = self.rng.choices(["once", "twice", "concurrent"], weights=[80, 10, 10])[0]
        if mode == "once":
            return [self.call(session, "POST", path, data, htmx=htmx, op=op)]
        with self.record.lock:
            self.record.double_submits[f"{op} {mode}"] += 1
        if mode == "twice":
            return [self.call(session, "POST", path, data, htmx=htmx, op=op) for _ in range(2)]
        results: list = [None, None]
        errors: list = []

        def one(i):
            try:
                results[i] = self.call(session, "POST", path, data, htmx=htmx, op=op)
            except Exception as exc:  # noqa: BLE001 - reported as an anomaly below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results

    # --- operations -----------------------------------------------------------------------------

    def amount(self, low: int, high: int) -> str:
        return f"{Decimal(self.rng.randint(low * 100, high * 100)) / 100:.2f}"

    def op_transfer(self, withdraw: bool) -> None:
        op = "withdrawal" if withdraw else "transfer"
        with self.record.lock:
            payees = list(self.record.payees)
        x = self.rng.choice(payees if withdraw and payees and self.rng.random() < 0.9 else self.accounts)
        path = f"/accounts/{x}/transfer/"
        page = self.call(self.admin, "GET", path + ("?type=withdraw" if withdraw else ""), htmx=True, op=op)
        if not self.expect(page, {200}, f"{op} drawer"):
            return
        token, key = _input_value(page.body, "csrfmiddlewaretoken"), _input_value(page.body, "idempotency_key")
        data = {"csrfmiddlewaretoken": token, "idempotency_key": key, "type": "withdraw" if withdraw else "transfer",
                "remark": f"bank client {self.n}"}
        if withdraw:
            sources = _select_values(page.body, "source")
            if not sources:
                with self.record.lock:
                    self.record.refused[op] += 1
                    self.record.reasons[f"{op}: no account can withdraw to this one (R-TR-4)"] += 1
                return
            data["source"] = self.rng.choice(sources)
            data["amount"] = self.amount(1, 300) if self.rng.random() < 0.9 else self.amount(5000, 20000)
        else:
            data["payer"] = str(self.rng.choice([a for a in self.accounts if a != x]))
            data["amount"] = self.amount(1, 500) if self.rng.random() < 0.9 else self.amount(20000, 50000)
        review = self.call(self.admin, "POST", path, {**data, "step": "review"}, htmx=True, op=op)
        if not self.expect(review, {200}, f"{op} review"):
            return
        if 'data-step="review"' not in review.body:
            self.refused(op, _errors(review.body))
            return
        responses = self.submit(self.admin, path, {**data, "step": "confirm"}, htmx=True, op=op, key=key)
        self._keyed_outcome(op, key, responses, success=lambda r: r.headers.get("HX-Trigger") == "accountChanged",
                            statuses={200}, amount=data["amount"], account=x,
                            other=int(data.get("payer") or data.get("source")))

    def _keyed_outcome(self, op, key, responses, *, success, statuses, **extra) -> None:
        outcomes = []
        for response in responses:
            if not self.expect(response, statuses, f"{op} confirm"):
                return
            if success(response):
                message = re.sub(r"<[^>]+>", "", response.body).strip()
                outcomes.append(("done", message))
            else:
                errors = _errors(response.body)
                outcomes.append(("refused", " ".join(errors)))
        for outcome, message in outcomes:
            self.note_key(key, op, outcome, message, **extra)
        for response, (outcome, _) in zip(responses, outcomes):
            if response.attempts > 1:
                with self.record.lock:
                    self.record.keyed_retried[f"{op} {outcome}"] += 1
        if op == "transfer" and any(o == "done" for o, _ in outcomes):
            with self.record.lock:
                self.record.payees.add(extra["account"])
        first, *rest = outcomes
        if first[0] == "done":
            self.succeeded(op)
            for later in rest:
                if later[0] != "done":
                    self.record.anomaly(f"{op} key {key}: first submit done, repeat got {later}")
                elif op in ("transfer", "withdrawal") and later[1] != first[1]:
                    self.record.anomaly(f"{op} key {key}: repeat answered differently: {first[1]!r} vs {later[1]!r}")
        else:
            if any(o[0] == "done" for o in rest):
                self.succeeded(op)  # a concurrent twin won; the other was refused on figures, then it went through
            else:
                self.refused(op, [first[1]])

    def op_credit(self) -> None:
        op = "credit limit"
        x = self.rng.choice(self.accounts)
        path = f"/accounts/{x}/credit/"
        page = self.call(self.admin, "GET", path, htmx=True, op=op)
        if not self.expect(page, {200}, "credit drawer"):
            return
        key = _input_value(page.body, "idempotency_key")
        data = {"csrfmiddlewaretoken": _input_value(page.body, "csrfmiddlewaretoken"), "idempotency_key": key,
                "new_limit": self.amount(0, 4000) if self.rng.random() < 0.85 else self.amount(20000, 90000),
                "reason": f"bank client {self.n}"}
        responses = self.submit(self.admin, path, data, htmx=True, op=op, key=key)
        self._keyed_outcome(op, key, responses, success=lambda r: r.headers.get("HX-Trigger") == "accountChanged",
                            statuses={200}, account=x, new_limit=data["new_limit"])

    def op_alert(self) -> None:
        op = "alert"
        x = self.rng.choice(self.accounts)
        path = f"/accounts/{x}/alert/"
        page = self.call(self.admin, "GET", path, htmx=True, op=op)
        if not self.expect(page, {200}, "alert drawer"):
            return
        data = {"csrfmiddlewaretoken": _input_value(page.body, "csrfmiddlewaretoken"),
                "threshold": self.amount(0, 3000) if self.rng.random() < 0.95 else "-5"}
        if self.rng.random() < 0.7:
            data["enabled"] = "on"
        response = self.call(self.admin, "POST", path, data, htmx=True, op=op)
        if self.expect(response, {200}, "alert post"):
            if response.headers.get("HX-Trigger") == "accountChanged":
                self.succeeded(op)
            else:
                self.refused(op, _errors(response.body))

    def op_alert_batch(self) -> None:
        op = "alert batch"
        chosen = self.rng.sample(self.accounts, self.rng.randint(2, 10))
        query = urllib.parse.urlencode({"accounts": chosen}, doseq=True)
        page = self.call(self.admin, "GET", f"/accounts/alerts/batch/?{query}", htmx=True, op=op)
        if not self.expect(page, {200}, "alert batch drawer"):
            return
        data = {"csrfmiddlewaretoken": _input_value(page.body, "csrfmiddlewaretoken"), "accounts": chosen,
                "threshold": self.amount(0, 3000) if self.rng.random() < 0.95 else "1.001"}
        if self.rng.random() < 0.7:
            data["enabled"] = "on"
        response = self.call(self.admin, "POST", "/accounts/alerts/batch/", data, htmx=True, op=op)
        if self.expect(response, {200}, "alert batch post"):
            if response.headers.get("HX-Trigger") == "accountChanged":
                self.succeeded(op)
            else:
                self.refused(op, _errors(response.body))

    def op_backoffice(self, kind: str) -> None:
        op = kind.replace("_", "-")
        x = self.rng.choice(self.accounts)
        path = f"/backoffice/accounts/account/{x}/{op}/"
        page = self.call(self.manager, "GET", path, op=op)
        if not self.expect(page, {200}, f"{op} form"):
            return
        key = _input_value(page.body, "idempotency_key")
        if not key:
            self.record.anomaly(f"{op} form has no idempotency key")
            return
        amount = self.amount(1, 800) if kind == "top_up" else self.amount(1, 1200)
        if self.rng.random() < 0.03:
            amount = "12.345"  # refused: more than 2 decimals (R-MON-1)
        data = {"csrfmiddlewaretoken": _input_value(page.body, "csrfmiddlewaretoken"), "amount": amount,
                "description": f"bank client {self.n}", "idempotency_key": key}
        responses = self.submit(self.manager, path, data, htmx=False, op=op, key=key)
        self._keyed_outcome(op, key, responses, success=lambda r: r.status == 302, statuses={200, 302},
                            account=x, amount=amount)

    def sign_in(self) -> None:
        self.login(self.admin, "/login/", ADMIN)
        self.login(self.manager, "/backoffice/login/", MANAGER)

    def run(self, deadline: float) -> None:
        ops = [(lambda: self.op_transfer(False), 30), (lambda: self.op_transfer(True), 15), (self.op_credit, 14),
               (self.op_alert, 7), (self.op_alert_batch, 4), (lambda: self.op_backoffice("top_up"), 15),
               (lambda: self.op_backoffice("charge"), 15)]
        funcs, weights = zip(*ops)
        while time.monotonic() < deadline:
            try:
                self.rng.choices(funcs, weights=weights)[0]()
            except TransportError as exc:
                self.record.anomaly(f"client {self.n}: gave up: {exc}")
            except Exception as exc:  # noqa: BLE001 - a harness or server surprise is an anomaly
                self.record.anomaly(f"client {self.n}: {exc.__class__.__name__}: {exc}")


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------

def fault_thread(db_url: str, db_name: str, master_pid: int, record: Record, deadline: float, rng: random.Random,
                 stop: threading.Event, start: float) -> None:
    import psycopg

    kill_worker_at = start + (deadline - start) * rng.uniform(0.3, 0.6)
    worker_killed = False
    conn = psycopg.connect(db_url.replace(f"/{db_name}", "/postgres"), autocommit=True)
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            stop.wait(rng.uniform(1.5, 5.0))
            if stop.is_set() or time.monotonic() >= deadline:
                break
            if not worker_killed and time.monotonic() >= kill_worker_at:
                workers = gunicorn_workers(master_pid)
                if workers:
                    victim = rng.choice(workers)
                    os.kill(victim, signal.SIGKILL)
                    record.fault("worker", f"SIGKILL to gunicorn worker {victim}")
                    worker_killed = True
                continue
            share = rng.choice([0.25, 0.5])
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND random() < %s",
                [db_name, share]).fetchall()
            record.fault("pg", f"terminated {sum(1 for r in rows if r[0])} connections")
    finally:
        conn.close()


def gunicorn_workers(master_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == master_pid:
                pids.append(int(entry.name))
    return pids


# --------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, port: int, log_path: Path, *, workers: int = 3) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "TASKS_BACKEND": "immediate", "EAC_ENV": "development",
           "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SETTINGS_MODULE": "eac.settings", "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [str(gunicorn) if gunicorn.exists() else "gunicorn", "eac.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
           "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as resp:
                if resp.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_exceptions(log_path: Path) -> tuple[Counter, Counter]:
    """The unhandled exceptions gunicorn's log holds (``django.request``): (connection lost, other)."""
    text = log_path.read_text(errors="replace")
    lost, other = Counter(), Counter()
    for block in re.split(r"\n(?=\S+ \S+ ERROR django\.request )", text):
        if " ERROR django.request " not in block:
            continue
        lines = [ln for ln in block.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", ln)), lines[-1])
        if re.match(r"^(django\.db\.utils\.|psycopg\.)?(OperationalError|InterfaceError)", last) and any(
                p in block for p in CONNECTION_LOST_PATTERNS):
            lost[last[:160]] += 1
        else:
            other[last[:160]] += 1
    return lost, other


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------

def verify(record: Record, setup: dict) -> list[str]:
    """Every invariant checkable from the database, and the clients' view against the database."""
    from django.db.models import Count, F, Q, Sum

    from accounts.ledger import ledger_differences
    from accounts.models import (
        Account,
        Bill,
        Charge,
        CreditChangeRecord,
        CreditContract,
        Operation,
        TopUp,
        TransferPair,
        TransferRecord,
    )
    from core.models import IdempotencyKey

    problems: list[str] = []
    zero = Decimal("0.00")

    def total(qs, f):
        return qs.aggregate(s=Sum(f))["s"] or zero

    accounts = Account.objects.all()
    # Conservation of money (R-MON-4, R-TR-3, R-TR-5): transfers and withdrawals move money, only top-ups and
    # charges bring it in or take it out.
    held = total(accounts, F("own_cash") + F("transfer_book_balance") - F("outstanding_balance"))
    topped, charged = total(TopUp.objects, "amount"), total(Charge.objects, "amount")
    if held != topped - charged:
        problems.append(f"money not conserved: accounts hold {held}, top-ups - charges = {topped - charged}")
    # No negative bucket (R-MON-2).
    for f in ("own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance"):
        n = accounts.filter(**{f"{f}__lt": 0}).count()
        if n:
            problems.append(f"{n} accounts with a negative {f}")
    if Bill.objects.filter(Q(unpaid_amount__lt=0) | Q(unpaid_amount__gt=F("amount"))).exists():
        problems.append("a bill's unpaid amount is outside 0..amount")
    # Bills sum = outstanding, per account (R-MON-2, R-MON-5).
    unpaid = dict(Bill.objects.values_list("account").annotate(s=Sum("unpaid_amount")).order_by())
    for pk, outstanding in accounts.values_list("pk", "outstanding_balance"):
        if (unpaid.get(pk) or zero) != outstanding:
            problems.append(f"account {pk}: outstanding {outstanding} but unpaid bills {unpaid.get(pk) or zero}")
    # Pairs (R-TR-3 to R-TR-5): 0 <= remaining revocable <= transferred, and both equal the records.
    transferred = {(r["payer"], r["payee"]): r["s"] for r in TransferRecord.objects.filter(kind="transfer")
                   .values("payer", "payee").annotate(s=Sum("amount")).order_by()}
    withdrawn = {(r["payee"], r["payer"]): r["s"] for r in TransferRecord.objects.filter(kind="withdrawal")
                 .values("payer", "payee").annotate(s=Sum("amount")).order_by()}
    for pair in TransferPair.objects.all():
        key = (pair.source_id, pair.target_id)
        if not (zero <= pair.remaining_revocable <= pair.total_transferred):
            problems.append(f"pair {key}: remaining revocable {pair.remaining_revocable} outside 0.."
                            f"{pair.total_transferred}")
        if pair.total_transferred != transferred.get(key, zero):
            problems.append(f"pair {key}: total transferred {pair.total_transferred} but records say "
                            f"{transferred.get(key, zero)}")
        if pair.remaining_revocable != transferred.get(key, zero) - withdrawn.get(key, zero):
            problems.append(f"pair {key}: remaining revocable {pair.remaining_revocable} but records say "
                            f"{transferred.get(key, zero) - withdrawn.get(key, zero)}")
    if set(withdrawn) - set(transferred):
        problems.append(f"withdrawals without a transfer: {sorted(set(withdrawn) - set(transferred))[:5]}")
    # Transfer book balance = received - withdrawn - spent from it, in total and per account (R-MON-2).
    for account in accounts:
        received = total(TransferRecord.objects.filter(kind="transfer", payee=account), "amount")
        given_back = total(TransferRecord.objects.filter(kind="withdrawal", payer=account), "amount")
        spent_book = total(Charge.objects.filter(account=account), "from_transfer_book")
        if account.transfer_book_balance != received - given_back - spent_book:
            problems.append(f"account {account.pk}: transfer book balance {account.transfer_book_balance} but "
                            f"records say {received - given_back - spent_book}")
        sent = total(TransferRecord.objects.filter(kind="transfer", payer=account), "amount")
        back = total(TransferRecord.objects.filter(kind="withdrawal", payee=account), "amount")
        own = (total(TopUp.objects.filter(account=account), "to_own_cash") - sent + back
               - total(Charge.objects.filter(account=account), "from_own_cash"))
        if account.own_cash != own:
            problems.append(f"account {account.pk}: own cash {account.own_cash} but records say {own}")
        last = CreditChangeRecord.objects.filter(account=account).order_by("-created_at", "-id").first()
        if account.credit_limit != (last.new_value if last else zero):
            problems.append(f"account {account.pk}: credit limit {account.credit_limit} but its last change "
                            f"record says {last.new_value if last else zero}")
    # Credit limits within the enterprise total (R-CR-3, R-CR-4); no bill is overdue within the run.
    contract = CreditContract.objects.get(enterprise_id=setup["enterprise"])
    allocated = total(accounts.filter(enterprise_id=setup["enterprise"]), "credit_limit")
    if allocated > contract.total_credit_limit:
        problems.append(f"credit limits sum to {allocated}, over the total credit limit {contract.total_credit_limit}")
    # The ledger (R-MON-4).
    problems += [f"ledger: {d}" for d in ledger_differences()]
    # Nothing half-applied: each operation has exactly its one record.
    for kind, model in (("top_up", TopUp), ("charge", Charge), ("transfer", TransferRecord),
                        ("withdrawal", TransferRecord), ("credit_limit", CreditChangeRecord)):
        ops = Operation.objects.filter(kind=kind)
        recorded = model.objects.filter(operation__kind=kind).values("operation").distinct().count()
        if ops.count() != recorded or model.objects.filter(operation__kind=kind).count() != recorded:
            problems.append(f"{kind}: {ops.count()} operations but {recorded} records")
    # Idempotency keys (R-TR-7): every claimed key has its result; no result has two keys.
    if IdempotencyKey.objects.filter(result_id__isnull=True).exists():
        problems.append("an idempotency key was claimed without a result")
    dup = (IdempotencyKey.objects.values("result_type", "result_id").annotate(n=Count("id")).filter(n__gt=1))
    if dup.exists():
        problems.append(f"results with more than one key: {list(dup[:5])}")
    # The clients' view against the database: a key answered "done" has exactly one record, matching the
    # request; a key answered only "refused" has none.
    rows = {k.key: k for k in IdempotencyKey.objects.filter(key__in=list(record.keys))}
    model_of = {"transfer": TransferRecord, "withdrawal": TransferRecord, "credit limit": CreditChangeRecord,
                "top-up": TopUp, "charge": Charge}
    for key, entry in record.keys.items():
        outcomes = [o for o, _ in entry["outcomes"]]
        row = rows.get(key)
        if "done" in outcomes:
            if row is None:
                problems.append(f"{entry['op']} key {key}: answered done but no key row")
                continue
            result = model_of[entry["op"]].objects.get(pk=row.result_id)
            if "amount" in entry and result.amount != Decimal(entry["amount"]):
                problems.append(f"{entry['op']} key {key}: recorded {result.amount}, asked {entry['amount']}")
        elif row is not None:
            problems.append(f"{entry['op']} key {key}: answered refused {entry['outcomes']} but was recorded")
    keyed_done = Counter(e["op"] for e in record.keys.values() if any(o == "done" for o, _ in e["outcomes"]))
    for op, model, flt in (("transfer", TransferRecord, {"kind": "transfer"}),
                           ("withdrawal", TransferRecord, {"kind": "withdrawal"}),
                           ("credit limit", CreditChangeRecord, {"account__isnull": False}),
                           ("charge", Charge, {}), ("top-up", TopUp, {"operation__actor__isnull": False})):
        in_db = model.objects.filter(**flt).count()
        record.key_counts[op] = (in_db, keyed_done[op])
        if in_db != keyed_done[op]:
            problems.append(f"{op}: {in_db} records but {keyed_done[op]} keys answered done")
    return problems


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def classify_5xx(record: Record) -> tuple[int, list[Attempt]]:
    """(5xx with a fault in flight, the others). A small margin covers the clocks of two threads."""
    caused, other = 0, []
    times = [t for t, _, _ in record.faults]
    for a in record.attempts_5xx:
        if any(a.start - 0.05 <= t <= a.end + 0.05 for t in times):
            caused += 1
        else:
            other.append(a)
    return caused, other


def transport_unexplained(record: Record) -> list[Attempt]:
    """Transport errors are expected only from the killed worker's request in flight."""
    times = [t for t, kind, _ in record.faults if kind == "worker"]
    return [a for a in record.transport_errors if not any(a.start - 0.05 <= t <= a.end + 0.05 for t in times)]


def run(args) -> dict:
    db_url = _setup.recreate_database(args.db)
    _setup.django_setup(db_url, migrate=True)
    import logging

    logging.getLogger("eac").setLevel(logging.WARNING)  # the setup's SMS lines
    from django.db import connection

    setup = prepare(args.accounts)
    connection.close()
    log_path = Path(args.log or f"/tmp/{args.db}-gunicorn.log")
    port = free_port()
    server = start_server(db_url, port, log_path)
    record = Record()
    started = time.monotonic()
    rng = random.Random(args.seed)
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        clients = [Client(i, base, record, setup["accounts"], random.Random(rng.random())) for i in range(args.clients)]
        # Sign in first (PBKDF2 costs about half a second per sign-in here), then run the timed workload.
        signing = [threading.Thread(target=c.sign_in) for c in clients]
        for t in signing:
            t.start()
        for t in signing:
            t.join()
        signed_in_after = time.monotonic() - started
        start = time.monotonic()
        deadline = start + args.seconds
        threads = [threading.Thread(target=c.run, args=(deadline,), name=f"client-{c.n}") for c in clients]
        for t in threads:
            t.start()
        faults = None
        if args.faults:
            faults = threading.Thread(target=fault_thread, args=(db_url, args.db, server.pid, record, deadline,
                                                                 random.Random(rng.random()), stop, start))
            faults.start()
        for t in threads:
            t.join()
        stop.set()
        if faults:
            faults.join()
        elapsed = time.monotonic() - start
        workers_after = len(gunicorn_workers(server.pid))
    finally:
        stop.set()
        stop_server(server)
    problems = verify(record, setup)
    lost, other_exc = server_exceptions(log_path)
    caused, other_5xx = classify_5xx(record)
    for a in other_5xx:
        record.anomaly(f"{a.status} on {a.path} with no fault in flight")
    for a in transport_unexplained(record):
        record.anomaly(f"transport error on {a.path} with no worker kill in flight")
    for text, n in other_exc.items():
        record.anomaly(f"server logged {n} x {text}")
    if args.faults and workers_after != 3:
        record.anomaly(f"{workers_after} gunicorn workers after the run, not 3")
    server_retries = log_path.read_text(errors="replace").count("after a lost database connection")
    summary = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _setup.machine(),
        "seconds": round(elapsed, 1),
        "clients": args.clients,
        "accounts": args.accounts,
        "requests": record.requests,
        "sign_in_seconds": round(signed_in_after, 1),
        "done": dict(record.done),
        "refused": dict(record.refused),
        "refusal_reasons": dict(record.reasons.most_common()),
        "double_submits": dict(record.double_submits),
        "faults": dict(Counter(kind for _, kind, _ in record.faults)),
        "connections_terminated": sum(int(re.search(r"\d+", d).group()) for _, k, d in record.faults if k == "pg"),
        "worker_killed": [d for _, k, d in record.faults if k == "worker"],
        "transport_errors": len(record.transport_errors),
        "http_5xx": len(record.attempts_5xx),
        "http_5xx_fault_caused": caused,
        "server_exceptions_connection_lost": sum(lost.values()),
        "server_retries_after_lost_connection": server_retries,
        "client_retries": dict(record.retries),
        "keyed_answered_after_retry": dict(record.keyed_retried),
        "records_vs_keys_done": record.key_counts,
        "check_failures": problems,
        "anomalies": record.anomalies,
    }
    return summary


def print_summary(s: dict) -> None:
    print(f"Bank test: {s['seconds']} s, {s['clients']} clients, {s['accounts']} accounts, {s['requests']} HTTP "
          f"requests ({s['machine']}, {s['date']}); {2 * s['clients']} sign-ins before, in {s['sign_in_seconds']} s")
    print(f"  operations done:    {sum(s['done'].values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(s['done'].items())))
    print(f"  operations refused: {sum(s['refused'].values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(s['refused'].items())))
    for reason, n in s["refusal_reasons"].items():
        print(f"    {n:6d}  {reason}")
    print("  double submits:     " + (", ".join(f"{k} {v}" for k, v in sorted(s['double_submits'].items())) or "none"))
    print(f"  faults:             {s['faults'].get('pg', 0)} kills of {s['connections_terminated']} database "
          f"connections; worker killed: {', '.join(s['worker_killed']) or 'no'}")
    print(f"  transport errors:   {s['transport_errors']}; 5xx: {s['http_5xx']} (caused by a fault: "
          f"{s['http_5xx_fault_caused']}); server exceptions, all lost connections: "
          f"{s['server_exceptions_connection_lost']}; services retried by the server after a lost "
          f"connection: {s['server_retries_after_lost_connection']}")
    print("  client retries:     " + (", ".join(f"{k} {v}" for k, v in sorted(s['client_retries'].items())) or "none"))
    print("  keyed POSTs answered after a retry (same key): "
          + (", ".join(f"{k} {v}" for k, v in sorted(s['keyed_answered_after_retry'].items())) or "none"))
    print("  records in the database / keys answered done: "
          + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(s['records_vs_keys_done'].items())))
    print(f"  checks failed:      {len(s['check_failures'])}")
    for p in s["check_failures"][:30]:
        print(f"    - {p}")
    print(f"  anomalies:          {len(s['anomalies'])}")
    for a in s["anomalies"][:30]:
        print(f"    - {a}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BANK_SECONDS", "60")))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--faults", action="store_true", help="kill database connections and one gunicorn worker")
    parser.add_argument("--db", default="eac_bank_run", help="scratch database (dropped and created)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log", default=None, help="gunicorn's log file")
    parser.add_argument("--json", default=None, help="write the summary here")
    args = parser.parse_args(argv)
    if not args.db.startswith("eac_bank"):
        parser.error("the scratch database's name starts with eac_bank (it is dropped)")
    summary = run(args)
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 1 if summary["anomalies"] or summary["check_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
