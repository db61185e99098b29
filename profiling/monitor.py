"""A memory monitor: RSS, USS, VMS, CPU %, threads and open files of a process (and its
children, added up) at a fixed interval. No Django: samples go to a callback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Reading:
    elapsed_s: float
    rss_bytes: int
    uss_bytes: int | None
    vms_bytes: int
    cpu_pct: float
    threads: int
    open_files: int | None


def processes(pid: int, include_children: bool) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)] if include_children else [root]


def read(procs: list[psutil.Process], elapsed_s: float) -> Reading:
    rss = vms = threads = 0
    uss: int | None = 0
    files: int | None = 0
    cpu = 0.0
    for proc in procs:
        with proc.oneshot():
            memory = proc.memory_info()
            rss += memory.rss
            vms += memory.vms
            threads += proc.num_threads()
            cpu += proc.cpu_percent(None)
            uss = _add(uss, _uss(proc))
            files = _add(files, _open_files(proc))
    return Reading(elapsed_s, rss, uss, vms, cpu, threads, files)


def _add(total: int | None, value: int | None) -> int | None:
    return None if total is None or value is None else total + value


def _uss(proc: psutil.Process) -> int | None:
    try:
        return proc.memory_full_info().uss
    except (psutil.AccessDenied, AttributeError):
        return None


def _open_files(proc: psutil.Process) -> int | None:
    try:
        return proc.num_fds()
    except (psutil.AccessDenied, AttributeError):
        return None


def watch(
    pid: int,
    *,
    duration_s: float,
    interval_s: float,
    on_reading: Callable[[Reading], None],
    include_children: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Sample for `duration_s` (or until the process exits or `should_stop`); the count taken.

    Children are looked up again every second, so workers that a supervisor restarts are
    followed. psutil.NoSuchProcess from the main process ends the window early.
    """
    procs = processes(pid, include_children)
    for proc in procs:
        proc.cpu_percent(None)  # the first call only sets the baseline
    start = time.monotonic()
    next_at, next_lookup, taken = start, start + 1.0, 0
    while not should_stop():
        now = time.monotonic()
        if now - start > duration_s:
            break
        if include_children and now >= next_lookup:
            procs, next_lookup = _refreshed(pid, procs), now + 1.0
        try:
            on_reading(read(procs, now - start))
        except psutil.NoSuchProcess:
            if not psutil.pid_exists(pid):
                break
            procs = _refreshed(pid, procs)
            continue
        taken += 1
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    return taken


def _refreshed(pid: int, old: list[psutil.Process]) -> list[psutil.Process]:
    known = {proc.pid: proc for proc in old}
    fresh = processes(pid, include_children=True)
    # Keep the objects we had, so their CPU % baselines carry on.
    return [known.get(proc.pid, proc) for proc in fresh]
