"""The generated reference pages match the code they are generated from."""

from __future__ import annotations

import subprocess
import sys

from docs import gen


def test_it_describes_every_variable_the_code_reads_and_no_other() -> None:
    assert gen.config_problems(gen.read_variables(), gen.read_meanings()) == []


def test_it_fails_when_the_code_reads_a_variable_the_reference_lacks() -> None:
    variables = gen.read_variables()
    variables["NEW_SETTING"] = gen.EnvRead("NEW_SETTING", places=["offgridperf/settings.py"])
    problems = gen.config_problems(variables, gen.read_meanings())
    assert problems == [
        "NEW_SETTING is read (offgridperf/settings.py) but config_meanings.toml does not "
        "describe it"
    ]


def test_it_fails_when_the_reference_lists_a_variable_no_code_reads() -> None:
    meanings = gen.read_meanings()
    meanings["GONE_SETTING"] = {"section": "Web and processes", "meaning": "removed"}
    problems = gen.config_problems(gen.read_variables(), meanings)
    assert problems == ["GONE_SETTING is described in config_meanings.toml but no code reads it"]


def test_it_finds_reads_through_the_env_helpers_and_os_environ() -> None:
    variables = gen.read_variables()
    assert variables["DB_POOL_MIN"].minimum == "0"
    assert variables["DB_POOL_MIN"].maximum == "DB_POOL_MAX"
    assert "offgridperf/management/commands/bootstrap.py" in (
        variables["OFFGRIDPERF_ADMIN_PASSWORD"].places
    )
    assert {"HOST", "OFFGRIDPERF_ENV_FILE", "OFFGRIDPERF_SERVER"} <= variables.keys()


def test_the_committed_reference_pages_are_what_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docs.gen", "--check"],
        cwd=gen.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
