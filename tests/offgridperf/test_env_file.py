from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from offgridperf.env import env_file_path, load_env_file, read_env_file

ROOT = Path(__file__).resolve().parents[2]
PROBE = "from django.conf import settings; print(settings.TIME_ZONE, settings.LOG_LEVEL)"


def manage(tmp_path: Path, env_file: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TIME_ZONE", "LOG_LEVEL")}
    clean.update({"OFFGRIDPERF_VAR_DIR": str(tmp_path), "OFFGRIDPERF_LOCAL": "1",
                  "OFFGRIDPERF_ENV_FILE": str(env_file), **env})  # fmt: skip
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_manage_py_reads_the_env_file_under_the_real_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# settings for this checkout\n\nexport TIME_ZONE=Europe/Paris\nLOG_LEVEL='WARNING'\n"
    )
    result = manage(tmp_path, env_file, "shell", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["Europe/Paris", "WARNING"]
    result = manage(tmp_path, env_file, "shell", "-c", PROBE, TIME_ZONE="UTC")
    assert result.stdout.splitlines()[-1].split() == ["UTC", "WARNING"]


def test_a_malformed_line_stops_start_up_naming_the_file_and_the_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TIME_ZONE=UTC\nthis line is wrong s3cret\n")
    result = manage(tmp_path, env_file, "check")
    assert result.returncode == 2
    assert f"{env_file}, line 2: not NAME=value" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def test_it_reads_quotes_comments_and_export(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('A=1\n  # note\nexport B="two words"\nC=\nD=x=y\n')
    assert read_env_file(env_file) == {"A": "1", "B": "two words", "C": "", "D": "x=y"}
    env_file.write_text("A='open\n")
    with pytest.raises(ImproperlyConfigured, match="line 1: A's quote is not closed"):
        read_env_file(env_file)


def test_the_real_environment_wins_and_a_missing_file_is_no_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("A=from-file\nB=from-file\n")
    environ = {"A": "real"}
    load_env_file(env_file, environ)
    assert environ == {"A": "real", "B": "from-file"}
    load_env_file(tmp_path / "absent", environ)
    assert env_file_path(ROOT, {}) == ROOT / ".env"
    assert env_file_path(ROOT, {"OFFGRIDPERF_ENV_FILE": ""}) is None
