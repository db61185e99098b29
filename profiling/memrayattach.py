"""memray, attached to a live PID for a window, writing its capture file. No Django.

`memray attach` injects memray's tracker into the target through gdb (Python before 3.14 has no
`sys.remote_exec`); the target then records its allocations, with their Python stacks, into a
file that the target itself writes. We attach with a target-side duration longer than the
window, so that a worker that dies mid-capture leaves a tracker that still stops by itself, and
detach at the end of the window: `memray detach` returns once the target has closed the file.

Every call has a timeout; memray's own errors come back as MemrayError with the fix where known.

The gdb matters: memray's injection is a function call made by gdb inside the target, and gdb
must give the target back its registers exactly as it found them. A gdb that cannot (Debian
bookworm's gdb 13 on a CPU with AMX: the kernel refuses its too-short register buffer) leaves the
system call the target was sleeping in unrestarted, and the target then fails with "Unknown
error 514" and usually exits. So the gdb is chosen (`gdb_executable`: the configured one, the one
requirements.txt installs beside this Python, else the PATH's) and proven on a throwaway process
of our own (`gdb_problem`) before it ever touches a target.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import subprocess
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
    gdb: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> float:
    """Record the allocations of `pid` for `duration_s` (or until `should_stop`) into `output`,
    in memray's full format (every allocation, so that all the bytes allocated by stack can be
    summed), through `gdb`; the seconds recorded. MemrayError when the target exits
    during the window: its file may be cut short."""
    seconds = max(1, math.ceil(duration_s))
    attach(pid, output, tracking_s=seconds + SAFETY_S, gdb=gdb)
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
            _detach_quietly(pid, gdb)  # the tracker would otherwise run on until its own stop
        raise
    detach(pid, gdb=gdb)
    return round(time.monotonic() - started, 3)


def _detach_quietly(pid: int, gdb: str) -> None:
    # The error that brought us here is the one to report, not the detach's.
    with contextlib.suppress(MemrayError):
        detach(pid, gdb=gdb)


def gdb_executable(configured: str = "") -> str | None:
    """The gdb memray attaches through: the configured path, the one beside this Python
    (requirements.txt's gdb-for-pwndbg), else the PATH's; None when there is none."""
    if configured:
        return shutil.which(configured) or configured
    beside = Path(sys.executable).parent / "gdb"
    if beside.exists():
        return str(beside)
    return shutil.which("gdb")


# The probe: a process of our own that blocks in a read(2), as a target blocks in a sleep or a
# poll, and exits 0 only when that read comes back intact after gdb has called into it.
_PROBE = (
    "import os, sys\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "sys.exit(0 if os.read(0, 1) == b'x' else 3)\n"
)


@functools.cache
def gdb_problem(gdb: str) -> str | None:
    """Why `gdb` must not attach to a target here, or None: proven once per process on a
    throwaway process, which gdb calls into and detaches from as memray's attach does."""
    if not (Path(gdb).is_file() and os.access(gdb, os.X_OK)):
        return f"gdb ({gdb}) is not an executable: point PROFILING_GDB at gdb, or leave it empty"
    probe = subprocess.Popen(  # noqa: S603 - this Python and a fixed program
        [sys.executable, "-c", _PROBE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        said = _call_into(gdb, probe)
        try:
            _, errors = probe.communicate(b"x", timeout=CALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return _unfit(gdb, said, "the process it called into did not answer after it")
        if probe.returncode != 0:
            last = errors.decode(errors="replace").strip().splitlines()[-1:]
            ended = last[0] if last else f"exit status {probe.returncode}"
            return _unfit(gdb, said, f"the process it called into then failed: {ended}")
        if said:
            return _unfit(gdb, said, "it failed")
        return None
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()


def _call_into(gdb: str, probe: subprocess.Popen[bytes]) -> str:
    """Have `gdb` call a function inside `probe` and detach; gdb's error, or ""."""
    probe.stdout.readline()  # type: ignore[union-attr]
    _wait_blocked(probe.pid)
    try:
        said = toolrun.run(
            [gdb, "-batch", "-nx", "-p", str(probe.pid),
             "-ex", "call (int)getpid()", "-ex", "detach"],
            timeout_s=CALL_TIMEOUT_S, tool="gdb",
        )  # fmt: skip
    except toolrun.ToolError as exc:
        return str(exc)
    lines = said.stderr.splitlines()
    return "; ".join(line for line in lines if "rror" in line or "Couldn't" in line)


def _unfit(gdb: str, said: str, what: str) -> str:
    return (
        f"gdb ({gdb}) cannot call into a process and give it back intact on this machine: "
        f"{what}" + (f" (gdb said: {said})" if said else "") + ". memray's attach would do "
        "the same to the target, so none is attempted: install the gdb of requirements.txt "
        "(gdb-for-pwndbg, beside this Python), or set PROFILING_GDB to a gdb that works "
        "(Debian bookworm's gdb 13 fails on CPUs with AMX)"
    )


def _wait_blocked(pid: int, timeout_s: float = 5.0) -> None:
    """Until `pid` sleeps in a system call (its read), as a target most often is."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_SLEEPING:
                return
        time.sleep(0.01)


def attach(pid: int, output: Path, *, tracking_s: int, gdb: str) -> None:
    """Start memray's tracker in `pid` through `gdb`, writing `output`, stopping by itself
    after `tracking_s` at the latest."""
    _memray(
        "attach", "--method", "gdb", "--duration", str(tracking_s),
        "--output", str(output), str(pid), pid=pid, gdb=gdb,
    )  # fmt: skip


def detach(pid: int, *, gdb: str) -> None:
    """Stop the tracker started in `pid`; the target has closed its file when this returns."""
    _memray("detach", "--method", "gdb", str(pid), pid=pid, gdb=gdb)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _memray(*arguments: str, pid: int, gdb: str) -> None:
    # memray runs the "gdb" it finds on the PATH: `gdb`'s folder comes first.
    env = os.environ.copy()
    env["PATH"] = os.pathsep.join([str(Path(gdb).parent), env.get("PATH", os.defpath)])
    try:
        toolrun.run(
            [*command(), *arguments],
            timeout_s=CALL_TIMEOUT_S, tool="memray", error=MemrayError, env=env,
        )  # fmt: skip
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
