from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def program() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `python -m tests.profiling.programs MODE`; every one is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(mode: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.profiling.programs", mode, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def artefacts_in_tmp(settings: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings.PROFILING_ARTEFACT_DIR = tmp_path / "profiles"
