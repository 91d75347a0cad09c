"""Settings for the Enterprise Account Center console.

Everything that differs between machines comes from the environment:

- ``EAC_ENV``: ``development`` (default) or ``production``.
- ``DATABASE_URL``: defaults to SQLite in ``db.sqlite3``; ``postgres://...`` selects PostgreSQL,
  which then uses psycopg 3's connection pool.
- ``SECRET_KEY``, ``DEBUG``, ``ALLOWED_HOSTS`` (comma separated), ``EAC_CURRENCY`` (default CNY).
- ``TASKS_BACKEND``: ``immediate`` (default) or ``database`` (a worker: ``manage.py db_worker``).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


EAC_ENV = os.environ.get("EAC_ENV", "development")
if EAC_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("EAC_ENV must be 'development' or 'production'")
PRODUCTION = EAC_ENV == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set in production")
    SECRET_KEY = "django-insecure-development-only-key-change-me-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "import_export",
    "django_tasks",
    "django_tasks_db",
    "core",
    "accounts",
    "sharing",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.middleware.RejectControlCharactersMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.RequestContextMiddleware",
]

ROOT_URLCONF = "eac.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
        },
    },
]

WSGI_APPLICATION = "eac.wsgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
_db = dj_database_url.parse(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, whose pool checks every idle connection once it finds a dead one (core/postgresql/).
    _db["ENGINE"] = "core.postgresql"
    _db["CONN_MAX_AGE"] = 0  # the pool keeps connections
    # The pool checks a connection when it hands it out (Django passes psycopg_pool's check_connection), so
    # a connection the server ended while it sat idle in the pool (restart, pg_terminate_backend) is replaced
    # instead of failing the next request. Connections that broke in use are discarded when given back.
    _db["CONN_HEALTH_CHECKS"] = True
    _db["OPTIONS"] = {
        # Django turns psycopg's prepared statements off (prepare_threshold None, for poolers such as
        # PgBouncer in transaction mode). The console talks to PostgreSQL through psycopg's own pool, so
        # the hot money statements of accounts/fastsql.py, which ask for it, are parsed and planned once per
        # connection. Django's own queries bind client-side and are never prepared either way.
        "prepare_threshold": int(os.environ.get("DB_PREPARE_THRESHOLD", "5")),
        # A connection whose server vanished (a network cut, a host down) fails within seconds instead of after
        # the kernel's TCP retries (minutes): keepalives while idle, and at most 10 s for sent data to be
        # acknowledged (libpq's tcp_user_timeout, in ms). The pool's check of an idle connection relies on it.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 10000,
        "pool": {
            "min_size": int(os.environ.get("DB_POOL_MIN", "2")),
            "max_size": int(os.environ.get("DB_POOL_MAX", "20")),
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
        },
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # Take the write lock at BEGIN so two writers queue instead of failing on upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db.setdefault("TEST", {})["NAME"] = os.environ.get("SQLITE_TEST_NAME") or None
DATABASES = {"default": _db}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = False

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Outside production WhiteNoise serves straight from the finders (no collectstatic needed, e.g. under gunicorn).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Notifications: SMS and email leave through the task queue (R-NT-1).
TASKS = {
    "default": {
        "BACKEND": {
            "immediate": "django_tasks.backends.immediate.ImmediateBackend",
            "database": "django_tasks_db.DatabaseBackend",
            "dummy": "django_tasks.backends.dummy.DummyBackend",
        }[os.environ.get("TASKS_BACKEND", "immediate")],
    }
}
# Development keeps email in files under var/mail/ instead of printing it; production sets EMAIL_BACKEND (SMTP).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@eac.example")
EAC_SMS_GATEWAY = os.environ.get("EAC_SMS_GATEWAY", "core.sms.LogSmsGateway")
EAC_NOTIFICATION_MAX_ATTEMPTS = 5

# The product's own settings.
EAC_CURRENCY = os.environ.get("EAC_CURRENCY", "CNY")
EAC_BILL_DUE_DAYS = int(os.environ.get("EAC_BILL_DUE_DAYS", "15"))
EAC_IDEMPOTENCY_KEEP_HOURS = 48
# On PostgreSQL a transfer first tries the one-call function of accounts/sql/ (accounts.fastsql.transfer_in_one_call);
# off, every transfer runs the Python path (the reference the function is tested against).
EAC_TRANSFER_FUNCTION = os.environ.get("EAC_TRANSFER_FUNCTION", "1") == "1"
EAC_ALERT_REMINDER_DAYS = 5
EAC_INVITATION_DAYS = 14
# Sign-in rate limit (core.login_throttle): this many failed sign-ins within the window lock sign-in for a user
# name, or from one address (higher: an office shares one address), until the oldest failure leaves the window.
EAC_LOGIN_MAX_FAILURES = int(os.environ.get("EAC_LOGIN_MAX_FAILURES", "5"))
EAC_LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("EAC_LOGIN_MAX_FAILURES_PER_IP", "20"))
EAC_LOGIN_WINDOW_MINUTES = int(os.environ.get("EAC_LOGIN_WINDOW_MINUTES", "15"))

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # HTMX reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "eac": {"handlers": ["console"], "level": os.environ.get("EAC_LOG_LEVEL", "INFO")},
        # An unhandled exception (a 500) is written with its traceback to stderr (gunicorn's log) even with
        # DEBUG off; Django's own console handler only logs with DEBUG on.
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
