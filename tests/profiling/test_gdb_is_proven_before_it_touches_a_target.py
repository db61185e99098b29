"""memray attaches through gdb, and a gdb that cannot give a process back its registers makes the
target's interrupted system call fail (seen with Debian bookworm's gdb 13 on a CPU with AMX: the
target died of "Unknown error 514"). The gdb is proven on a throwaway process of our own first,
and a gdb that fails that proof never touches a target."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from profiling import availability, memrayattach, services
from profiling.models import CaptureStatus

pytestmark = [pytest.mark.django_db]

Program = Callable[[str], subprocess.Popen[str]]


def fake_gdb(tmp_path: Path, body: str) -> Path:
    """A gdb stand-in that logs the PID it is given (after -p), then does `body`."""
    log = tmp_path / "gdb-was-given"
    script = tmp_path / "bin" / "gdb"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        'pid=""; prev=""\n'
        'for arg in "$@"; do [ "$prev" = "-p" ] && pid="$arg"; prev="$arg"; done\n'
        f'echo "$pid" >> {log}\n'
        f"{body}\n"
    )
    script.chmod(0o755)
    return script


def given_pids(tmp_path: Path) -> list[int]:
    log = tmp_path / "gdb-was-given"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_the_gdb_installed_beside_this_python_gives_a_process_back_intact() -> None:
    gdb = memrayattach.gdb_executable()
    assert gdb == str(Path(sys.executable).parent / "gdb")  # requirements.txt's gdb-for-pwndbg
    assert memrayattach.gdb_problem(gdb) is None


def test_a_gdb_that_ends_the_process_it_calls_into_is_refused_before_any_target(
    tmp_path: Path, program: Program, settings: Any
) -> None:
    gdb = fake_gdb(tmp_path, 'kill -USR1 "$pid"')
    settings.PROFILING_GDB = str(gdb)
    target = program("steady")
    capture = services.create_capture("allocations", pid=target.pid, duration_s=2, any_process=True)
    services.execute(capture.pk)
    capture.refresh_from_db()
    assert capture.status == CaptureStatus.ERROR
    assert capture.error.startswith(
        f"gdb ({gdb}) cannot call into a process and give it back intact on this machine: "
        "the process it called into then failed"
    )
    assert "set PROFILING_GDB to a gdb that works" in capture.error
    probed = given_pids(tmp_path)
    assert len(probed) == 1 and target.pid not in probed  # only our own throwaway process
    assert target.poll() is None


def test_a_gdb_that_reports_an_error_is_refused_with_its_words(tmp_path: Path) -> None:
    gdb = fake_gdb(
        tmp_path, 'echo "Couldn\'t write extended state status: Bad address." >&2; exit 0'
    )
    problem = memrayattach.gdb_problem(str(gdb))
    assert problem is not None
    assert problem.startswith(f"gdb ({gdb}) cannot call into a process")
    assert "(gdb said: Couldn't write extended state status: Bad address.)" in problem


def test_the_captures_page_says_when_the_configured_gdb_is_not_an_executable(
    viewer_client: Any, settings: Any
) -> None:
    settings.PROFILING_GDB = "/nonexistent/gdb"
    html = viewer_client.get(reverse("profiling:index")).content.decode()
    assert (
        "Allocation captures need a gdb that works here: gdb (/nonexistent/gdb) is not an "
        "executable: point PROFILING_GDB at gdb, or leave it empty" in html
    )


def test_the_captures_page_says_when_there_is_no_gdb_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    line = availability.gdb_missing()
    assert line is not None
    assert line.startswith("Allocation captures need gdb, which memray attaches through")
