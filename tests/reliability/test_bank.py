"""The bank test (issue 5, reliability 1 and 2): bench/bank.py against a real gunicorn on PostgreSQL.

16 clients over HTTP do transfers, withdrawals, credit limit and alert changes in the console and top-ups
and charges in the back office, with double submits, while database connections are killed and one
gunicorn worker is SIGKILLed. Runs ``BANK_SECONDS`` (default 60). The harness exits non-zero on any
anomaly or failed check; this test also asserts that the run did what it claims (R-TR-7, R-MON-4).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.postgres
def test_bank_under_faults_conserves_money_and_answers_every_client_R_TR_7_R_MON_4(tmp_path):
    db = settings.DATABASES["default"]
    server = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    # One scratch database per pytest database (test_wt_bank -> eac_bank_test_wt_bank), dropped first.
    scratch = f"eac_bank_{db['NAME']}"[:63]
    seconds = os.environ.get("BANK_SECONDS", "60")
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bank.py"), "--seconds", seconds, "--clients", "16", "--faults",
         "--db", scratch, "--json", str(out), "--log", str(tmp_path / "gunicorn.log")],
        cwd=ROOT, env={**os.environ, "BENCH_PG": server}, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-6000:])
    assert out.exists(), proc.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["anomalies"] == [] and summary["check_failures"] == [], proc.stdout[-4000:]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert summary["seconds"] >= float(seconds)
    done = summary["done"]
    for op in ("transfer", "withdrawal", "credit limit", "alert", "alert batch", "top-up", "charge"):
        assert done.get(op, 0) > 0, f"no {op} went through: {done}"
    assert sum(summary["refused"].values()) > 0 and summary["refusal_reasons"]
    assert sum(summary["double_submits"].values()) > 0
    assert summary["faults"].get("pg", 0) > 0 and summary["connections_terminated"] > 0
    assert len(summary["worker_killed"]) == 1
    assert summary["http_5xx"] == summary["http_5xx_fault_caused"]
