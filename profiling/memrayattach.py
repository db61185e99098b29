"""memray, attached to a live PID for a window, writing its capture file. No Django.

`memray attach` injects memray's tracker into the target through gdb (Python before 3.14 has no
`sys.remote_exec`); the target then records its allocations, with their Python stacks, into a
file that the target itself writes. We attach with a target-side duration longer than the
window, so that a worker that dies mid-capture leaves a tracker that still stops by itself, and
detach at the end of the window: `memray detach` returns once the target has closed the file.

Every call has a timeout; memray's own errors come back as MemrayError with the fix where known.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import psutil

from profiling import toolrun

# gdb attaching, loading symbols, injecting and the target answering: seconds on a busy host.
CALL_TIMEOUT_S = 60.0
# The target stops tracking by itself this long after the window, if no detach ever comes.
SAFETY_S = 60
POLL_S = 0.25


class MemrayError(toolrun.ToolError):
    """memray failed; the message says what happened and what to change where known."""


def command() -> list[str]:
    """memray's CLI, from the package installed beside this Python (requirements.txt)."""
    return [sys.executable, "-m", "memray"]


def version() -> str:
    try:
        return metadata.version("memray")
    except metadata.PackageNotFoundError:
        raise MemrayError(
            "memray is not installed: pip install memray (see requirements.txt)"
        ) from None


def capture(
    pid: int,
    output: Path,
    *,
    duration_s: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> float:
    """Record the allocations of `pid` for `duration_s` (or until `should_stop`) into `output`,
    in memray's full format (every allocation, so that all the bytes allocated by stack can be
    summed); the seconds recorded. MemrayError when the target exits
    during the window: its file may be cut short."""
    seconds = max(1, math.ceil(duration_s))
    attach(pid, output, tracking_s=seconds + SAFETY_S)
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration_s and not should_stop():
            if not alive(pid):
                raise MemrayError(
                    f"process {pid} exited {elapsed:.1f} s into the allocation capture"
                )
            time.sleep(min(POLL_S, max(0.0, duration_s - elapsed)))
    except Exception:
        if alive(pid):
            _detach_quietly(pid)  # the tracker would otherwise run on until its own stop
        raise
    detach(pid)
    return round(time.monotonic() - started, 3)


def _detach_quietly(pid: int) -> None:
    # The error that brought us here is the one to report, not the detach's.
    with contextlib.suppress(MemrayError):
        detach(pid)


def attach(pid: int, output: Path, *, tracking_s: int) -> None:
    """Start memray's tracker in `pid`, writing `output`, stopping by itself after
    `tracking_s` at the latest."""
    _memray(
        "attach", "--method", "gdb", "--duration", str(tracking_s),
        "--output", str(output), str(pid), pid=pid,
    )  # fmt: skip


def detach(pid: int) -> None:
    """Stop the tracker started in `pid`; the target has closed its file when this returns."""
    _memray("detach", "--method", "gdb", str(pid), pid=pid)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _memray(*arguments: str, pid: int) -> None:
    try:
        toolrun.run(
            [*command(), *arguments], timeout_s=CALL_TIMEOUT_S, tool="memray", error=MemrayError
        )
    except MemrayError as exc:
        if not alive(pid):
            raise MemrayError(f"process {pid} exited during the allocation capture") from None
        raise MemrayError(explain(str(exc))) from None


def explain(message: str) -> str:
    """memray's message, with what to change for the failures the target itself reports."""
    if "No module named 'memray'" in message:
        return (
            f"{message}: the target imports memray to track itself; install memray "
            "(the version in requirements.txt) into the target's Python environment"
        )
    if "PermissionError" in message or "Permission denied" in message:
        return (
            f"{message}: the target writes the capture file itself; make "
            "PROFILING_ARTEFACT_DIR writable by the target's user"
        )
    return message
