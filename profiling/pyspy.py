"""py-spy, run as a child process against a live PID. No Django: the caller passes the
executable (settings.PROFILING_PYSPY or `executable()`).

Every call has a timeout (the capture's duration plus a margin), so a capture never hangs;
py-spy's own errors come back as PySpyError with its last line of output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from profiling import toolrun

# Beyond the sampling duration: py-spy's start (attach, symbol loading) and writing the file.
MARGIN_S = 30.0
FORMATS = ("speedscope", "chrometrace", "raw", "flamegraph")


class PySpyError(toolrun.ToolError):
    """py-spy failed; the message is its own last words, with what to do where known."""


def executable(configured: str = "") -> str:
    """The py-spy to run: the configured path, the one beside this Python, or the PATH's."""
    if configured:
        return configured
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if not found:
        raise PySpyError("py-spy is not installed: pip install py-spy (see requirements.txt)")
    return found


def version(exe: str) -> str:
    out = _run([exe, "--version"], timeout_s=10).stdout.strip()
    return out.removeprefix("py-spy").strip() or out


def record(
    exe: str,
    pid: int,
    output: Path,
    *,
    duration_s: float,
    rate_hz: int = 100,
    fmt: str = "speedscope",
    subprocesses: bool = False,
    idle: bool = False,
    nonblocking: bool = False,
) -> str:
    """Sample `pid` for `duration_s` into `output` in `fmt`; py-spy's summary line."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}")
    seconds = max(1, round(duration_s))
    command = [exe, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(rate_hz), "--format", fmt, "--output", str(output), "--function"]
    if subprocesses:
        command.append("--subprocesses")
    if idle:
        command.append("--idle")
    if nonblocking:
        command.append("--nonblocking")
    result = _run(command, timeout_s=seconds + MARGIN_S)
    if not output.exists():
        raise PySpyError(f"py-spy wrote no profile: {toolrun.last_words(result)}")
    return toolrun.last_words(result, default="")


def dump(exe: str, pid: int, *, timeout_s: float = MARGIN_S) -> list[dict[str, Any]]:
    """Every thread of `pid` with its name and stack (py-spy dump --json)."""
    result = _run([exe, "dump", "--pid", str(pid), "--json"], timeout_s=timeout_s)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise PySpyError(f"py-spy dump gave no JSON: {toolrun.last_words(result)}") from None


def _run(command: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return toolrun.run(command, timeout_s=timeout_s, tool="py-spy", error=PySpyError)
