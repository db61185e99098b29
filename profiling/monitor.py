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


# -- continuous monitoring: one reading per process of a target ------------------------------


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    rss_bytes: int
    uss_bytes: int | None
    cpu_pct: float
    threads: int
    open_files: int | None


class Tree:
    """The processes behind one root PID, kept from reading to reading so that each one's
    CPU % is measured since the previous reading (psutil's baseline lives on the object)."""

    def __init__(self, pid: int, include_children: bool) -> None:
        self.root = psutil.Process(pid)
        self.include_children = include_children
        self.known: dict[int, psutil.Process] = {pid: self.root}
        self.root.cpu_percent(None)

    @property
    def pid(self) -> int:
        return self.root.pid

    def alive(self) -> bool:
        """The root still runs (is_running compares its start time: a reused PID is not it)."""
        return self.root.is_running() and self.root.status() != psutil.STATUS_ZOMBIE

    def read(self) -> list[ProcessReading]:
        """One reading of each process; psutil.NoSuchProcess when the root is gone. A child
        that ends between the lookup and its reading is left out; a new child's first CPU %
        is 0 (no baseline yet)."""
        procs = [self.root]
        if self.include_children:
            procs += self.root.children(recursive=True)
        self.known = {proc.pid: self.known.get(proc.pid, proc) for proc in procs}
        found = []
        for proc in self.known.values():
            try:
                found.append(_one(proc))
            except psutil.NoSuchProcess:
                if proc is self.root:
                    raise
        return found


def _one(proc: psutil.Process) -> ProcessReading:
    with proc.oneshot():
        return ProcessReading(
            pid=proc.pid,
            rss_bytes=proc.memory_info().rss,
            uss_bytes=_uss(proc),
            cpu_pct=proc.cpu_percent(None),
            threads=proc.num_threads(),
            open_files=_open_files(proc),
        )


def summed(readings: list[ProcessReading]) -> dict[str, int | float | None]:
    """The readings of a target's processes added up (USS and files: None when any is unknown)."""
    uss: int | None = 0
    files: int | None = 0
    for reading in readings:
        uss = _add(uss, reading.uss_bytes)
        files = _add(files, reading.open_files)
    return {
        "rss_bytes": sum(r.rss_bytes for r in readings),
        "uss_bytes": uss,
        "cpu_pct": round(sum(r.cpu_pct for r in readings), 2),
        "threads": sum(r.threads for r in readings),
        "open_files": files,
    }
