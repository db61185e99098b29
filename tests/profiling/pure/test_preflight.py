from __future__ import annotations

import os
import subprocess

import pytest

from profiling import preflight

PTRACE = 1 << preflight.CAP_SYS_PTRACE


def test_it_refuses_a_missing_process() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    with pytest.raises(preflight.PreflightError, match=f"process {process.pid} does not exist"):
        preflight.check(process.pid)


def test_it_refuses_a_process_that_is_not_python() -> None:
    process = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(preflight.PreflightError, match="is not a Python process"):
            preflight.check(process.pid)
    finally:
        process.kill()
        process.wait()


def test_it_reads_the_python_version_of_a_python_process() -> None:
    found = preflight.check(os.getpid())
    assert found.python_version == "3.11"


@pytest.mark.parametrize(
    ("scope", "caps", "ours", "theirs", "expected"),
    [
        (None, 0, 1000, 1000, None),
        (0, 0, 1000, 1000, None),
        (1, 0, 1000, 1000, "ptrace_scope = 1"),
        (1, PTRACE, 1000, 1000, None),
        (2, 0, 0, 0, "ptrace_scope = 2"),
        (2, PTRACE, 0, 0, None),
        (3, PTRACE, 0, 0, "ptrace_scope = 3"),
        (0, 0, 1000, 0, "another user's process"),
        (0, PTRACE, 1000, 0, None),
    ],
)
def test_it_says_what_to_change_when_ptrace_would_be_refused(
    scope: int | None, caps: int, ours: int, theirs: int, expected: str | None
) -> None:
    problem = preflight.ptrace_problem(scope, caps, ours, theirs)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_an_allocation_capture_needs_gdb_and_names_the_package() -> None:
    problem = preflight.allocation_problem("3.11", None)
    assert problem is not None and "gdb-for-pwndbg" in problem
    assert preflight.allocation_problem("3.11", "/usr/bin/gdb") is None


@pytest.mark.parametrize(("version", "refused"), [("3.8", True), ("2.7", True), ("3.9", False)])
def test_an_allocation_capture_needs_a_python_memray_supports(version: str, refused: bool) -> None:
    problem = preflight.allocation_problem(version, "/usr/bin/gdb")
    assert (problem is not None) == refused
    if refused:
        assert f"runs Python {version}" in problem and "3.9 or newer" in problem


def test_a_ptrace_refusal_names_the_tracer_to_give_the_capability() -> None:
    problem = preflight.ptrace_problem(2, 0, 1000, 1000, tracer="gdb")
    assert problem is not None and "setcap cap_sys_ptrace+ep` on gdb" in problem
