"""What the profiler's pages cannot do in the current configuration, each as one line that
says what is missing and how to get it. A feature that needs something the configuration
lacks is never silently absent: the page that would show it prints the line instead.

Computed from the settings and this machine (the web, worker and target share both under
`make run`; in a deployment the same image runs every role)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from profiling import memrayattach, preflight, pyspy

AGENT_SECTIONS = ("tracemalloc", "gc")


def agent_missing() -> str | None:
    """Why no capture can have GC and tracemalloc figures now, or None when they can."""
    if settings.REDIS_URL:
        return None
    also = "" if settings.PROFILING_AGENT else " and PROFILING_AGENT=1"
    return (
        "GC and tracemalloc figures need the in-process agent, which publishes through Redis: "
        f"set REDIS_URL{also}, then restart the target"
    )


def pyspy_missing() -> str | None:
    """Why CPU, thread and trace captures cannot run, as far as py-spy goes, or None."""
    try:
        exe = pyspy.executable(settings.PROFILING_PYSPY)
    except pyspy.PySpyError:
        return (
            "CPU, thread and trace captures need py-spy: pip install py-spy (see "
            "requirements.txt), or set PROFILING_PYSPY to its path"
        )
    found = shutil.which(exe) or exe
    if not (Path(found).is_file() and os.access(found, os.X_OK)):
        return (
            f"CPU, thread and trace captures need py-spy, and PROFILING_PYSPY ({exe}) is not "
            "an executable: point it at py-spy, or leave it empty for the one installed here"
        )
    return None


def ptrace_missing() -> str | None:
    """Why py-spy would be refused even on a process of our own user here, or None."""
    # Our own uid on both sides: only the machine-wide rules (Yama, capabilities) count.
    problem = preflight.ptrace_problem(
        preflight.yama_scope(), preflight.effective_caps(), os.getuid(), os.getuid()
    )
    return f"CPU, thread, trace and allocation captures need ptrace: {problem}" if problem else None


def gdb_missing() -> str | None:
    """Why allocation captures cannot run here, as far as gdb goes, or None (proven on a
    process of our own, once per process: see memrayattach.gdb_problem)."""
    gdb = memrayattach.gdb_executable(settings.PROFILING_GDB)
    if gdb is None:
        return (
            "Allocation captures need gdb, which memray attaches through: pip install -r "
            "requirements.txt (it installs gdb-for-pwndbg beside this Python), or set "
            "PROFILING_GDB to a gdb"
        )
    problem = memrayattach.gdb_problem(gdb)
    return f"Allocation captures need a gdb that works here: {problem}" if problem else None


def missing() -> list[str]:
    """Every profiler feature the current configuration lacks, one line each."""
    found = (agent_missing(), pyspy_missing(), ptrace_missing(), gdb_missing())
    return [line for line in found if line]


def agent_note(summary: dict[str, Any], pid: int | None) -> str:
    """Why a memory capture has no GC or tracemalloc figures ("" when it has them, or when
    the agent's own error says why): what the capture recorded, else the configuration."""
    if any(summary.get(section) for section in AGENT_SECTIONS) or summary.get("agent_error"):
        return ""
    return summary.get("agent_missing") or agent_missing() or no_agent_in(pid)


def no_agent_in(pid: int | None) -> str:
    return (
        f"GC and tracemalloc figures need the in-process agent, and process {pid} ran none: "
        "start it with PROFILING_AGENT=1 (our own processes), or call "
        "offgridperf_agent.process.start(redis_url) in the service"
    )
