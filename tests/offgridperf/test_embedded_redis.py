"""The embedded Redis runall starts when REDIS_URL is unset: a private unix socket under var/."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from offgridperf.management.commands.runall import (
    embedded_redis_processes,
    embedded_redis_ready,
)
from tests.conftest import ROOT
from tests.processes import wait_for


@pytest.fixture
def embedded(settings: Any, tmp_path: Path) -> Path:
    settings.EMBEDDED_REDIS = True
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_REDIS_SOCKET = tmp_path / "redis.sock"
    return settings.EMBEDDED_REDIS_SOCKET


def test_runall_starts_no_redis_of_its_own_when_redis_url_names_one(settings: Any) -> None:
    settings.EMBEDDED_REDIS = False
    assert embedded_redis_processes() == []


def test_the_embedded_redis_answers_on_a_socket_only_its_user_may_open(embedded: Path) -> None:
    [spec] = embedded_redis_processes()
    assert spec.name == "redis"
    options = dict(zip(spec.argv[1::2], spec.argv[2::2], strict=True))
    assert options["--port"] == "0"  # no TCP listener
    # Only keys with a TTL (cache entries) are evicted, never queued tasks.
    assert options["--maxmemory-policy"] == "volatile-lru"
    proc = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(embedded_redis_ready, 10, "the embedded Redis's answer")
        assert stat.S_IMODE(os.stat(embedded).st_mode) == 0o700
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not embedded_redis_ready()


def test_a_var_dir_too_long_for_a_socket_path_is_refused_naming_the_setting(
    settings: Any, embedded: Path
) -> None:
    settings.EMBEDDED_REDIS_SOCKET = Path("/tmp") / ("v" * 120) / "redis.sock"
    with pytest.raises(CommandError, match="OFFGRIDPERF_VAR_DIR is too long"):
        embedded_redis_processes()


def test_a_command_run_without_runall_goes_to_the_source_without_a_warning(
    tmp_path: Path,
) -> None:
    services = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    env = {k: v for k, v in os.environ.items() if k not in services}
    env.update(OFFGRIDPERF_VAR_DIR=str(tmp_path), OFFGRIDPERF_LOCAL="1", OFFGRIDPERF_ENV_FILE="")
    script = (
        "from emissions.cache import BATCH; from offgridperf import cache;"
        "print(BATCH.get_or_compute('detail:1', lambda: 'computed'), cache.state().reachable)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "computed False"
    assert "WARNING" not in result.stderr
    assert "the embedded Redis is not running (runall starts it)" in result.stderr
