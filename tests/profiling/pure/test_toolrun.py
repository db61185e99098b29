"""The profiling tools' one runner, and what it adds to their errors."""

from __future__ import annotations

import sys

import pytest

from profiling import memrayattach, toolrun


def test_it_stops_a_tool_at_its_timeout_and_says_so() -> None:
    with pytest.raises(toolrun.ToolError, match="slowtool did not finish within 1 s"):
        toolrun.run(
            [sys.executable, "-c", "import time; time.sleep(5)"], timeout_s=1, tool="slowtool"
        )


def test_it_reports_a_failing_tool_by_its_last_error_line() -> None:
    script = "import sys; print('starting'); print('Error: no such pid', file=sys.stderr); exit(1)"
    with pytest.raises(memrayattach.MemrayError, match="^Error: no such pid$"):
        toolrun.run(
            [sys.executable, "-c", script],
            timeout_s=10,
            tool="memray",
            error=memrayattach.MemrayError,
        )


def test_memrays_refused_ptrace_gets_the_fix() -> None:
    message = toolrun.explain("You most likely do not have permission to trace the process.")
    assert "run the worker as the process' user or as root, or give it CAP_SYS_PTRACE" in message


def test_a_target_without_memray_is_told_to_install_it() -> None:
    message = memrayattach.explain(
        "Failed to start tracking in remote process: No module named 'memray'"
    )
    assert "install memray (the version in requirements.txt) into the target's" in message


def test_a_target_that_cannot_write_the_file_is_told_which_directory() -> None:
    message = memrayattach.explain("Failed to start tracking in remote process: PermissionError")
    assert "make PROFILING_ARTEFACT_DIR writable by the target's user" in message
