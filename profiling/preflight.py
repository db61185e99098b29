"""Checks before a capture: the process exists, it is Python (which version), and we may ptrace
it. Each failure is one message that says what to change. No Django."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

CAP_SYS_PTRACE = 19
YAMA_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")
# The oldest CPython the pinned memray (requirements.txt) supports.
MEMRAY_MIN_PYTHON = (3, 9)
_PYTHON_VERSION = re.compile(r"python(\d+\.\d+)")


class PreflightError(Exception):
    """The capture cannot be taken; the message says why and what to change."""


@dataclass(frozen=True)
class Process:
    pid: int
    exe: str
    python_version: str
    cmdline: str


def check(pid: int, *, needs_ptrace: bool = True, tracer: str = "py-spy") -> Process:
    """The process `pid` as far as a capture needs it, or PreflightError. `tracer` is the
    program that will ptrace it, named in the fix when ptrace needs a capability."""
    try:
        process = psutil.Process(pid)
        exe = process.exe() or process.name()
        cmdline = " ".join(process.cmdline())
        their_uid = process.uids().real
    except psutil.NoSuchProcess:
        raise PreflightError(f"process {pid} does not exist (it may have exited)") from None
    except psutil.AccessDenied:
        raise PreflightError(
            f"process {pid} cannot be inspected by this user: run the worker as the process' "
            "user or as root"
        ) from None
    version = python_version(pid, exe)
    if version is None:
        raise PreflightError(
            f"process {pid} ({exe}) is not a Python process: profile the Python interpreter "
            "that runs the service (e.g. the gunicorn or celery worker, not a shell)"
        )
    if needs_ptrace:
        problem = ptrace_problem(
            yama_scope(), effective_caps(), os.getuid(), their_uid, tracer=tracer
        )
        if problem:
            raise PreflightError(problem)
    return Process(pid=pid, exe=exe, python_version=version, cmdline=cmdline)


def registered_problem(pid: int, roots: Mapping[int, bool], include_children: bool) -> str | None:
    """Why `pid` may not be captured by someone who may capture registered targets only, or
    None. `roots` maps each registered target's PID to whether its children count too: the
    process itself, or a descendant of a root that includes its children, may be captured (and
    with its own children only under such a root)."""
    if roots.get(pid):
        return None
    if pid in roots and not include_children:
        return None
    try:
        parents = psutil.Process(pid).parents()
    except psutil.NoSuchProcess:
        return f"pid: process {pid} does not exist (it may have exited)"
    except psutil.AccessDenied:
        parents = []
    if any(roots.get(parent.pid) for parent in parents):
        return None
    if pid in roots:
        return (
            f"children: process {pid} is a registered profile target without its children: "
            "capture it without them, or register the target with its children"
        )
    return (
        f"pid: process {pid} is not a registered profile target's process (nor a child of one "
        "registered with its children): register it as a profile target (permission "
        "profiling.add_profiletarget), or ask for profiling.capture_any_process"
    )


def python_version(pid: int, exe: str) -> str | None:
    """ "3.11" for a CPython process (from its executable or the libpython it maps), or None."""
    match = _PYTHON_VERSION.search(Path(exe).name)
    if match:
        return match.group(1)
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"libpython(\d+\.\d+)", maps)
    return match.group(1) if match else None


def ptrace_problem(
    scope: int | None, caps: int, our_uid: int, their_uid: int, *, tracer: str = "py-spy"
) -> str | None:
    """Why ptrace would be refused, from the Yama scope (None: no Yama), our effective
    capabilities and the two uids; None when it is allowed."""
    privileged = bool(caps & (1 << CAP_SYS_PTRACE))
    if scope == 3:
        return (
            "ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, which only a "
            "reboot undoes): boot with ptrace_scope 0 or 1 to profile live processes"
        )
    if privileged:
        return None
    if scope == 2:
        return (
            "ptrace needs CAP_SYS_PTRACE here (kernel.yama.ptrace_scope = 2): give the worker "
            f"that capability (e.g. `setcap cap_sys_ptrace+ep` on {tracer}, or docker run "
            "--cap-add SYS_PTRACE), or set `sysctl kernel.yama.ptrace_scope=0`"
        )
    if our_uid != their_uid:
        return (
            f"ptrace of another user's process (uid {their_uid}, ours {our_uid}) needs "
            "CAP_SYS_PTRACE: run the worker as that user, or give it the capability"
        )
    if scope == 1:
        return (
            "ptrace of a process that is not our child is refused (kernel.yama.ptrace_scope = "
            "1): set `sysctl kernel.yama.ptrace_scope=0`, or give the worker CAP_SYS_PTRACE"
        )
    return None


def allocation_problem(python_version: str, gdb: str | None) -> str | None:
    """Why memray cannot attach to a process running Python `python_version` ("3.11") with the
    gdb found at `gdb` (None: not found), or None."""
    if gdb is None:
        return (
            "gdb is not installed, and memray attaches through it: pip install -r "
            "requirements.txt (it installs gdb-for-pwndbg beside this Python), or set "
            "PROFILING_GDB to a gdb"
        )
    major, _, minor = python_version.partition(".")
    if (int(major), int(minor or 0)) < MEMRAY_MIN_PYTHON:
        oldest = ".".join(map(str, MEMRAY_MIN_PYTHON))
        return (
            f"the process runs Python {python_version}, and memray attaches to CPython "
            f"{oldest} or newer: take a memory capture (RSS over time) instead, or upgrade its "
            "Python"
        )
    return None


def yama_scope() -> int | None:
    try:
        return int(YAMA_SCOPE.read_text().strip())
    except (OSError, ValueError):
        return None


def effective_caps() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0
