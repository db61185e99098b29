"""The engine and stats are libraries: their tests run without PostgreSQL, Redis or Django."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")

# Runs the engine's tests in-process with pytest-django disabled, then says which of our
# Django-side packages got imported on the way: there must be none.
WITHOUT_DJANGO = """
import sys, pytest
status = pytest.main(sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"django", "offgridperf", "emissions"})
print("loaded:", ",".join(loaded) or "nothing")
sys.exit(status)
"""


def without_services() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in SERVICES}


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=without_services(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_it_runs_the_pure_tests_without_postgres_redis_or_django() -> None:
    # Both at once, and the only run of these tests in a whole-suite run (tests/conftest.py
    # deselects them there, so that each runs once): as a user types it (pytest-django loaded,
    # no services), every app's pure tests; without pytest-django at all, the engine's and the
    # stats package's.
    pure = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("*/pure"))
    plain = start("-m", "pytest", *pure, "-q", "-p", "no:cacheprovider")
    no_django = start(
        "-c",
        WITHOUT_DJANGO,
        "tests/engine",
        "tests/stats",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:django",
        # pytest-django's ini key is unknown once the plugin is off; that is expected here.
        "-W",
        "ignore::pytest.PytestConfigWarning",
    )
    plain_out, _ = plain.communicate(timeout=600)
    no_django_out, _ = no_django.communicate(timeout=600)

    assert plain.returncode == 0, plain_out[-3000:]
    assert " passed" in plain_out
    assert no_django.returncode == 0, no_django_out[-6000:]
    assert "loaded: nothing" in no_django_out


def test_it_refuses_django_tests_without_postgres_and_redis() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/emissions", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=without_services(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "runs against the real PostgreSQL and Redis" in result.stdout + result.stderr
