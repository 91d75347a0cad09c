"""Settings from the environment; the production mode passes ``manage.py check --deploy`` (issue 2, item 3)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("EAC_", "DJANGO_"))}
    environment.pop("DATABASE_URL", None)
    environment.pop("SECRET_KEY", None)
    environment.pop("ALLOWED_HOSTS", None)
    environment.pop("DEBUG", None)
    environment.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


def test_production_mode_passes_check_deploy_without_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", EAC_ENV="production",
                        SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "?: (security" not in result.stderr


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = run_manage("check", EAC_ENV="production", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_development_defaults_are_flagged_by_check_deploy():
    """The local defaults are for local use only: check --deploy says so."""
    result = run_manage("check", "--deploy")
    assert "security.W018" in result.stderr  # DEBUG on


def test_settings_read_the_environment(monkeypatch):
    script = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'eac.settings'); "
              "from django.conf import settings; "
              "print(settings.EAC_CURRENCY, settings.ALLOWED_HOSTS, settings.DEBUG, "
              "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default'].get('OPTIONS', {}).get('pool'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAC_", "DJANGO_"))}
    env.update(EAC_CURRENCY="USD", ALLOWED_HOSTS="a.example, b.example", DEBUG="false",
               DATABASE_URL="postgres://u@db.example:5432/eac", DB_POOL_MAX="7")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 4)[:4] == ["USD", "['a.example',", "'b.example']", "False"]
    assert "core.postgresql" in out.stdout and "'max_size': 7" in out.stdout


@pytest.mark.parametrize("value", ["staging", "prod"])
def test_unknown_environment_refused(value):
    result = run_manage("check", EAC_ENV=value)
    assert result.returncode != 0 and "EAC_ENV must be" in result.stderr
