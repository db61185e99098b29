from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from offgridperf.env import env_bool, env_int, parse_database_url, redact_url

ROOT = Path(__file__).resolve().parents[2]
ENV_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DEBUG",
    "SECRET_KEY",
    "DB_POOL_MAX",
    "OFFGRIDPERF_LOCAL",
    "LOG_LEVEL",
    "TIME_ZONE",
    "ALLOWED_HOSTS",
    "EMAIL_HOST",
    "EMAIL_PORT",
)
PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "db = settings.DATABASES['default'];"
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']),"
    " 'pool': db.get('OPTIONS', {}).get('pool'), 'cache': settings.CACHES['default']['BACKEND'],"
    " 'cache_pool': settings.CACHES['default'].get('OPTIONS', {})"
    ".get('CONNECTION_POOL_KWARGS', {}).get('max_connections'),"
    " 'broker': settings.CELERY_BROKER_URL, 'debug': settings.DEBUG,"
    " 'toolbar': 'debug_toolbar' in settings.INSTALLED_APPS, 'tz': settings.TIME_ZONE,"
    " 'email': settings.EMAIL_BACKEND}))"
)


def run_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    clean.update(
        {"OFFGRIDPERF_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "offgridperf.settings"}
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_manage(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    clean.update({"OFFGRIDPERF_VAR_DIR": str(tmp_path), "OFFGRIDPERF_LOCAL": "1"})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_runs_on_embedded_defaults_with_no_environment(tmp_path: Path) -> None:
    result = run_settings(tmp_path, OFFGRIDPERF_LOCAL="1")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"].startswith(str(tmp_path))
    # The embedded Redis runall starts: one cache and broker shared by every process.
    assert found["cache"].endswith("RedisCache")
    assert found["broker"] == f"redis+socket://{tmp_path}/redis.sock?virtual_host=1"
    assert found["debug"] is False
    assert found["tz"] == "UTC"
    assert found["email"].endswith("console.EmailBackend")  # alerts reach the log, not void
    assert (tmp_path / "secret_key").exists()
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_it_uses_postgres_pool_and_django_redis_when_set(tmp_path: Path) -> None:
    result = run_settings(
        tmp_path,
        OFFGRIDPERF_LOCAL="1",
        DATABASE_URL="postgres://u:p@db.example:5433/perf",
        DB_POOL_MAX="7",
        REDIS_URL="redis://127.0.0.1:6379/3",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/4",
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["pool"]["max_size"] == 7
    assert found["cache"] == "django_redis.cache.RedisCache"
    assert found["cache_pool"] == 10
    assert found["broker"] == "redis://127.0.0.1:6379/4"


def test_it_sends_alert_email_by_smtp_once_a_host_is_set(tmp_path: Path) -> None:
    result = run_settings(tmp_path, OFFGRIDPERF_LOCAL="1", EMAIL_HOST="smtp.example")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["email"].endswith("smtp.EmailBackend")
    bad = run_settings(tmp_path, OFFGRIDPERF_LOCAL="1", EMAIL_PORT="smtp")
    assert bad.returncode != 0
    assert "EMAIL_PORT" in bad.stderr


def test_it_never_enables_the_debug_toolbar_in_tests_but_does_in_debug(tmp_path: Path) -> None:
    found = json.loads(run_settings(tmp_path, DEBUG="1").stdout)
    assert found["debug"] is True and found["toolbar"] is True
    found = json.loads(run_settings(tmp_path, DEBUG="0", OFFGRIDPERF_LOCAL="1").stdout)
    assert found["toolbar"] is False


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DB_POOL_MAX": "ten"}, ("DB_POOL_MAX", "whole number")),
        ({"DB_POOL_MAX": "0"}, ("DB_POOL_MAX", "from 1 to 500")),
        ({"DATABASE_URL": "mysql:/x"}, ("DATABASE_URL", "postgres://")),
        ({"DATABASE_URL": "postgres://localhost"}, ("DATABASE_URL", "database name")),
        ({"DEBUG": "maybe"}, ("DEBUG", "true/false")),
        ({"REDIS_URL": "http://cache"}, ("REDIS_URL", "redis://")),
        ({"CELERY_BROKER_URL": "ftp://broker"}, ("CELERY_BROKER_URL", "amqp://")),
        ({"TIME_ZONE": "Mars/Olympus"}, ("TIME_ZONE", "IANA")),
        ({"LOG_LEVEL": "LOUD"}, ("LOG_LEVEL", "WARNING")),
        ({"REDIS_RETRIES": "-1"}, ("REDIS_RETRIES", "from 0 to 20")),
        ({"SECRET_KEY": "short"}, ("SECRET_KEY", "32")),
    ],
)
def test_it_stops_start_up_with_one_line_naming_the_variable(
    tmp_path: Path, env: dict[str, str], names: tuple[str, str]
) -> None:
    result = run_manage(tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("offgridperf: configuration error:")
    for word in names:
        assert word in lines[0]


def test_it_requires_a_secret_key_when_debug_is_off_outside_local_runs(tmp_path: Path) -> None:
    result = run_settings(tmp_path, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_it_never_shows_the_database_password_in_errors() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_database_url("DATABASE_URL", "postgres://user:hunter2@host:notaport/db")
    assert "hunter2" not in str(caught.value)
    assert redact_url("redis://:hunter2@host:6379/0") == "redis://:***@host:6379/0"


def test_it_parses_typed_values() -> None:
    assert env_bool("X", False, environ={"X": "yes"}) is True
    assert env_bool("X", True, environ={"X": "off"}) is False
    assert env_int("X", 3, environ={}) == 3
    assert env_int("X", 3, minimum=1, environ={"X": " 12 "}) == 12
    url = parse_database_url("DATABASE_URL", "postgresql://a:b%40c@h:6543/n?sslmode=require")
    assert (url.user, url.password, url.host, url.port, url.name) == ("a", "b@c", "h", 6543, "n")
    assert url.options == {"sslmode": "require"}
    assert parse_database_url("DATABASE_URL", "sqlite:////tmp/x.db").name == "/tmp/x.db"
