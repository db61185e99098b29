"""Allocation captures of real processes with memray attached through gdb."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command

from profiling import services
from profiling.models import CaptureStatus, ProfileCapture
from tests.profiling.conftest import ROOT

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

Program = Callable[[str], subprocess.Popen[str]]
PROGRAMS = ROOT / "tests" / "profiling" / "programs.py"


def take(pid: int, duration_s: float) -> ProfileCapture:
    capture = services.create_capture(
        "allocations", pid=pid, duration_s=duration_s, any_process=True
    )
    services.execute(capture.pk)
    capture.refresh_from_db()
    return capture


def line_of(comment: str) -> int:
    lines = PROGRAMS.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.endswith(f"# {comment}"))


def test_it_names_the_function_that_leaks_as_the_top_allocator(program: Program) -> None:
    leaker = program("leak")
    capture = take(leaker.pid, duration_s=3)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert capture.tool == "memray" and capture.tool_version
    top = capture.summary["top_by_bytes"][0]
    assert (top["function"], top["line"]) == ("leak", line_of("the leaking line"))
    assert top["file"] == str(PROGRAMS)
    # 100 kB a tenth of a second, over about 3 s: tens of blocks, megabytes, all still alive.
    assert top["bytes"] >= 1_000_000 and top["count"] >= 10
    assert capture.summary["leaks"][0]["function"] == "leak"
    assert capture.summary["leaked_bytes"] >= top["bytes"]
    assert capture.summary["peak_bytes"] >= top["bytes"]
    flame = json.loads(services.artefact_path(capture, "flame").read_text())
    assert flame["value"] >= top["bytes"]
    assert services.artefact_path(capture, "memray").stat().st_size > 0


def test_it_weighs_stacks_by_all_the_bytes_they_allocated_not_those_held_at_the_peak(
    program: Program,
) -> None:
    churner = program("churn")
    capture = take(churner.pid, duration_s=3)
    assert capture.status == CaptureStatus.DONE, capture.error
    by_bytes = capture.summary["top_by_bytes"]
    # Over about 3 s: some 300 MB allocated and freed at one line, 3 MB kept at the other.
    assert (by_bytes[0]["function"], by_bytes[0]["line"]) == ("churn", line_of("the churning line"))
    kept = next(row for row in by_bytes if row["line"] == line_of("the line that keeps"))
    assert by_bytes[0]["bytes"] >= 5 * kept["bytes"] and by_bytes[0]["count"] >= 5 * kept["count"]
    # At the end only the kept line's allocations are alive: the leaks view names it, not churn.
    assert capture.summary["leaks"][0]["line"] == line_of("the line that keeps")
    assert capture.summary["allocated_bytes"] > capture.summary["peak_bytes"]
    flame = json.loads(services.artefact_path(capture, "flame").read_text())
    assert flame["value"] == capture.summary["allocated_bytes"]


def test_a_target_that_exits_mid_capture_ends_it_in_error(program: Program) -> None:
    leaker = program("leak")
    threading.Timer(2.0, leaker.kill).start()
    capture = take(leaker.pid, duration_s=8)
    assert capture.status == CaptureStatus.ERROR
    assert f"process {leaker.pid} exited" in capture.error
    assert capture.finished_at is not None


def test_a_missing_process_ends_the_capture_in_error() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    capture = take(process.pid, duration_s=1)
    assert capture.status == CaptureStatus.ERROR
    assert f"process {process.pid} does not exist" in capture.error


def test_a_target_without_gdb_is_refused_with_the_fix(
    program: Program, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    steady = program("steady")
    # No gdb beside this Python, none on the PATH, none configured.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    capture = take(steady.pid, duration_s=1)
    assert capture.status == CaptureStatus.ERROR
    assert "gdb is not installed" in capture.error
    assert "pip install -r requirements.txt" in capture.error


def test_the_cli_prints_the_top_allocators_largest_first_as_json(
    program: Program, capsys: pytest.CaptureFixture[str]
) -> None:
    leaker = program("leak")
    call_command(
        "profile", "allocations", "--any-process", "--pid", str(leaker.pid), "--duration", "2",
        "--json",
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    allocators = result["top_allocators"]
    assert set(allocators[0]) == {"function", "file", "line", "bytes", "count"}
    assert allocators[0]["function"] == "leak"
    sizes = [allocator["bytes"] for allocator in allocators]
    assert sizes == sorted(sizes, reverse=True)
    assert result["allocated_bytes"] >= sum(sizes) and result["peak_bytes"] > 0
    assert "memray" in result["artefacts"]
