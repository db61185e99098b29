"""Captures, end to end: find the process, check it, run the tool, keep the artefacts on disk
and the summary in the database. A capture always ends `done` or `error`, never hangs: every
tool call has a timeout and every failure becomes the capture's error message."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from loadtests.models import LoadTestRun, RunStatus
from profiling import (
    agentclient,
    availability,
    heap,
    memrayattach,
    monitor,
    preflight,
    pyspy,
    speedscope,
    toolrun,
    trend,
)
from profiling.models import (
    CaptureKind,
    CaptureStatus,
    FunctionStat,
    MemorySample,
    ProfileCapture,
    ProfileTarget,
)

log = logging.getLogger(__name__)

MAX_RATE_HZ = 1000
MIN_INTERVAL_MS = 10
# A trace is a timeline of every sample: keep it short enough to load in a browser.
MAX_TRACE_S = 30
TOP_FUNCTIONS = 100
# A running memory capture writes its samples this often (s): its page draws them live.
LIVE_FLUSH_S = 1.0


class CaptureProblem(ValueError):
    """A capture that may not be started; the message names the field and the rule."""


def resolve_pid(target: ProfileTarget) -> int:
    """The PID `target` points at now, or CaptureProblem saying why there is none."""
    if target.pid:
        return target.pid
    if target.pid_file.strip():
        path = Path(target.pid_file)
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise CaptureProblem(f"pid_file: {path} does not hold a PID") from None
    if target.cmdline_match.strip():
        return _match_cmdline(target.cmdline_match)
    raise CaptureProblem("target: give a PID, a PID file or a command-line match")


def registered_roots() -> dict[int, bool]:
    """The PID each registered profile target points at now -> whether its children count too
    (a target that points at no process now is left out)."""
    roots: dict[int, bool] = {}
    for target in ProfileTarget.objects.all():
        try:
            pid = resolve_pid(target)
        except CaptureProblem:
            continue
        roots[pid] = roots.get(pid, False) or target.include_children
    return roots


def _match_cmdline(text: str) -> int:
    own = psutil.Process().pid
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.info["pid"] != own:
            found.append((proc.info["create_time"], proc.info["pid"]))
    if not found:
        raise CaptureProblem(f"cmdline_match: no running process' command line contains {text!r}")
    return min(found)[1]


def create_capture(
    kind: str,
    *,
    target: ProfileTarget | None = None,
    pid: int | None = None,
    duration_s: float = 10.0,
    rate_hz: int = 100,
    interval_ms: int = 100,
    include_children: bool | None = None,
    idle: bool = False,
    run: LoadTestRun | None = None,
    created_by: str = "",
    any_process: bool = False,
) -> ProfileCapture:
    """A queued capture, validated; the run going on is attached when none is given.
    `any_process` only for a creator with profiling.capture_any_process (or the CLI's
    --any-process): otherwise preflight refuses a process no registered target points at."""
    problem = capture_problem(kind, target, pid, duration_s, rate_hz, interval_ms)
    if problem:
        raise CaptureProblem(problem)
    if include_children is None:
        include_children = bool(target and target.include_children)
    problem = children_problem(kind, include_children)
    if problem:
        raise CaptureProblem(problem)
    return ProfileCapture.objects.create(
        kind=kind,
        target=target,
        pid=pid,
        duration_s=duration_s,
        rate_hz=rate_hz,
        interval_ms=interval_ms,
        include_children=include_children,
        idle=idle,
        run=run or current_run(),
        created_by=created_by,
        any_process=any_process,
    )


def capture_named_target(target_name: str, kind: str, duration_s: float) -> int | None:
    """Create and take a capture of the profile target called `target_name` (what a periodic
    task set in the admin asks for); its id, or None when no target has that name (logged)."""
    target = ProfileTarget.objects.filter(name=target_name).first()
    if target is None:
        log.warning("scheduled capture: no profile target named %r", target_name)
        return None
    capture = create_capture(kind, target=target, duration_s=duration_s, created_by="schedule")
    execute(capture.pk)
    return capture.pk


def capture_problem(
    kind: str,
    target: ProfileTarget | None,
    pid: int | None,
    duration_s: float,
    rate_hz: int,
    interval_ms: int,
) -> str | None:
    limit = settings.PROFILING_MAX_DURATION_S
    if kind not in CaptureKind.values:
        return f"kind: must be one of {', '.join(CaptureKind.values)}"
    if target is None and not pid:
        return "pid: give a PID or a profile target"
    if pid is not None and pid <= 0:
        return "pid: must be a positive process id"
    if kind != CaptureKind.THREADS and not 0 < duration_s <= limit:
        return f"duration: must be more than 0 and at most {limit} s (PROFILING_MAX_DURATION_S)"
    if kind == CaptureKind.TRACE and duration_s > MAX_TRACE_S:
        return f"duration: a trace lasts at most {MAX_TRACE_S} s, to stay viewable"
    if not 1 <= rate_hz <= MAX_RATE_HZ:
        return f"rate: must be between 1 and {MAX_RATE_HZ} samples per second"
    if interval_ms < MIN_INTERVAL_MS:
        return f"interval: must be at least {MIN_INTERVAL_MS} ms"
    return None


def children_problem(kind: str, include_children: bool) -> str | None:
    if kind == CaptureKind.ALLOCATIONS and include_children:
        return (
            "children: an allocation capture attaches to one process: capture a worker by its "
            "PID (a child of a target registered with its children may be captured)"
        )
    return None


def current_run() -> LoadTestRun | None:
    """The load-test run going on now, when exactly one is."""
    running = list(LoadTestRun.objects.filter(status=RunStatus.RUNNING)[:2])
    return running[0] if len(running) == 1 else None


def execute(capture_id: int, *, should_stop: Callable[[], bool] = lambda: False) -> str:
    """Take a queued capture; its final status. Safe to call twice: only one call claims it."""
    claimed = ProfileCapture.objects.filter(pk=capture_id, status=CaptureStatus.QUEUED).update(
        status=CaptureStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return ProfileCapture.objects.get(pk=capture_id).status
    capture = ProfileCapture.objects.get(pk=capture_id)
    try:
        _take(capture, should_stop)
    except (preflight.PreflightError, toolrun.ToolError, CaptureProblem) as exc:
        return _finish(capture, CaptureStatus.ERROR, str(exc))
    except Exception as exc:  # noqa: BLE001 - a capture ends `error`, whatever went wrong
        log.exception("profile capture %s failed", capture_id)
        return _finish(capture, CaptureStatus.ERROR, f"{type(exc).__name__}: {exc}")
    return _finish(capture, CaptureStatus.DONE, "")


def _finish(capture: ProfileCapture, status: str, error: str) -> str:
    capture.status, capture.error, capture.finished_at = status, error, timezone.now()
    capture.save()
    return status


def _take(capture: ProfileCapture, should_stop: Callable[[], bool]) -> None:
    if capture.pid is None:
        capture.pid = resolve_pid(capture.target)
    if not capture.any_process:
        problem = preflight.registered_problem(
            capture.pid, registered_roots(), capture.include_children
        )
        if problem:
            raise preflight.PreflightError(problem)
    needs_ptrace = capture.kind != CaptureKind.MEMORY
    tracer = "gdb" if capture.kind == CaptureKind.ALLOCATIONS else "py-spy"
    process = preflight.check(capture.pid, needs_ptrace=needs_ptrace, tracer=tracer)
    capture.python_version = process.python_version
    capture.save(update_fields=["pid", "python_version"])
    {
        CaptureKind.CPU: _cpu,
        CaptureKind.THREADS: _threads,
        CaptureKind.TRACE: _trace,
        CaptureKind.MEMORY: lambda c: _memory(c, should_stop),
        CaptureKind.ALLOCATIONS: lambda c: _allocations(c, should_stop),
    }[capture.kind](capture)


def artefact_dir(capture: ProfileCapture) -> Path:
    path = Path(settings.PROFILING_ARTEFACT_DIR) / f"capture-{capture.pk}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artefact_path(capture: ProfileCapture, name: str) -> Path | None:
    """The file of artefact `name` of `capture`, when it has one and it is still on disk."""
    relative = capture.artefacts.get(name)
    if not relative:
        return None
    base = Path(settings.PROFILING_ARTEFACT_DIR).resolve()
    path = (base / relative).resolve()
    return path if path.is_relative_to(base) and path.is_file() else None


def _keep(capture: ProfileCapture, name: str, path: Path) -> None:
    base = Path(settings.PROFILING_ARTEFACT_DIR)
    capture.artefacts[name] = str(path.relative_to(base))


def _pyspy(capture: ProfileCapture) -> str:
    exe = pyspy.executable(settings.PROFILING_PYSPY)
    capture.tool, capture.tool_version = "py-spy", pyspy.version(exe)
    return exe


def _cpu(capture: ProfileCapture) -> None:
    exe = _pyspy(capture)
    output = artefact_dir(capture) / "profile.speedscope.json"
    pyspy.record(
        exe,
        capture.pid,
        output,
        duration_s=capture.duration_s,
        rate_hz=capture.rate_hz,
        subprocesses=capture.include_children,
        idle=capture.idle,
        nonblocking=settings.PROFILING_PYSPY_NONBLOCKING,
    )
    doc = json.loads(output.read_text())
    stacks = artefact_dir(capture) / "profile.collapsed.txt"
    stacks.write_text(speedscope.collapsed(doc))
    _keep(capture, "speedscope", output)
    _keep(capture, "collapsed", stacks)
    top = speedscope.top_functions(doc, TOP_FUNCTIONS)
    with transaction.atomic():
        FunctionStat.objects.filter(capture=capture).delete()
        FunctionStat.objects.bulk_create(
            FunctionStat(capture=capture, **_truncated(share.__dict__)) for share in top
        )
    capture.summary = {
        "samples": speedscope.sample_count(doc),
        "threads": len(doc.get("profiles", [])),
        "nonblocking": settings.PROFILING_PYSPY_NONBLOCKING,
    }


def _truncated(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "function": fields["function"][:500], "file": fields["file"][:1000]}


def _threads(capture: ProfileCapture) -> None:
    exe = _pyspy(capture)
    threads = pyspy.dump(exe, capture.pid)
    output = artefact_dir(capture) / "threads.json"
    output.write_text(json.dumps(threads, indent=1))
    _keep(capture, "threads", output)
    capture.summary = {"threads": [thread_summary(thread) for thread in threads]}


def thread_summary(thread: dict[str, Any]) -> dict[str, Any]:
    """A thread of py-spy's dump as the page and the CLI show it: name, id, stack (leaf first)."""
    return {
        "name": thread.get("thread_name") or "",
        "id": thread.get("thread_id"),
        "os_id": thread.get("os_thread_id"),
        "active": bool(thread.get("active")),
        "owns_gil": bool(thread.get("owns_gil")),
        "stack": [
            {"function": f.get("name", "?"), "file": f.get("filename", ""), "line": f.get("line")}
            for f in thread.get("frames", [])
        ],
    }


def _trace(capture: ProfileCapture) -> None:
    exe = _pyspy(capture)
    output = artefact_dir(capture) / "trace.chrometrace.json"
    pyspy.record(
        exe,
        capture.pid,
        output,
        duration_s=capture.duration_s,
        rate_hz=capture.rate_hz,
        fmt="chrometrace",
        subprocesses=capture.include_children,
        idle=capture.idle,
        nonblocking=settings.PROFILING_PYSPY_NONBLOCKING,
    )
    _keep(capture, "chrometrace", output)
    events = json.loads(output.read_text())
    events = events.get("traceEvents", []) if isinstance(events, dict) else events
    capture.summary = {
        "events": len(events),
        "threads": len({event.get("tid") for event in events}),
        "bytes": output.stat().st_size,
    }


def _allocations(capture: ProfileCapture, should_stop: Callable[[], bool]) -> None:
    """memray attached for the window; the bytes allocated by stack (the flame graph), the top
    allocators and the leaks in the summary, and memray's own file to download. The gdb memray
    attaches through is proven first (memrayattach.gdb_problem): one that fails never touches
    the target."""
    gdb = memrayattach.gdb_executable(settings.PROFILING_GDB)
    problem = preflight.allocation_problem(capture.python_version, gdb)
    if gdb is not None and problem is None:
        problem = memrayattach.gdb_problem(gdb)
    if problem or gdb is None:
        raise preflight.PreflightError(problem or "gdb is not installed")
    capture.tool, capture.tool_version = "memray", memrayattach.version()
    output = artefact_dir(capture) / "allocations.memray"
    output.unlink(missing_ok=True)  # memray refuses to overwrite a file
    recorded_s = memrayattach.capture(
        capture.pid,
        output,
        duration_s=capture.duration_s,
        gdb=gdb,
        should_stop=should_stop,
    )
    found = heap.read(output)
    flame = artefact_dir(capture) / "allocations.flame.json"
    flame.write_text(json.dumps(heap.flame_tree(found.allocated)))
    _keep(capture, "memray", output)
    _keep(capture, "flame", flame)
    capture.summary = {**heap.summary(found), "recorded_s": recorded_s}


def _memory(capture: ProfileCapture, should_stop: Callable[[], bool]) -> None:
    capture.tool, capture.tool_version = "psutil", psutil.__version__
    # With the agent in the process, tracemalloc's growth and GC figures over the same window.
    traced = _agent_request(capture, "tracemalloc_start")
    started = timezone.now()
    readings: list[monitor.Reading] = []
    MemorySample.objects.filter(capture=capture).delete()
    live = LiveSamples(capture, started)

    def keep(reading: monitor.Reading) -> None:
        readings.append(reading)
        live.add(reading)

    monitor.watch(
        capture.pid,
        duration_s=capture.duration_s,
        interval_s=capture.interval_ms / 1000,
        on_reading=keep,
        include_children=capture.include_children,
        should_stop=should_stop,
    )
    live.flush()
    fitted = memory_trend(readings)
    capture.verdict = fitted.verdict
    capture.summary = {**capture.summary, "samples": len(readings), **fitted.as_dict()}
    if traced is not None:
        capture.tool += " + tracemalloc (agent)"
        capture.summary.update(_agent_growth(capture, traced))


class LiveSamples:
    """A running memory capture's samples, written as they come (at most every LIVE_FLUSH_S),
    so that its page draws them while it runs, not only at the end."""

    def __init__(self, capture: ProfileCapture, started: Any) -> None:
        self.capture, self.started = capture, started
        self.pending: list[MemorySample] = []
        self.flushed_at = time.monotonic()

    def add(self, reading: monitor.Reading) -> None:
        at = self.started + timezone.timedelta(seconds=reading.elapsed_s)
        self.pending.append(MemorySample(capture=self.capture, at=at, **reading.__dict__))
        if time.monotonic() - self.flushed_at >= LIVE_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        MemorySample.objects.bulk_create(self.pending)
        self.pending, self.flushed_at = [], time.monotonic()


def _agent_request(capture: ProfileCapture, op: str) -> dict[str, Any] | None:
    if agentclient.figures(capture.pid) is None:
        # Recorded with the capture: the configuration may change before anyone reads it.
        missing = availability.agent_missing() or availability.no_agent_in(capture.pid)
        capture.summary = {**capture.summary, "agent_missing": missing}
        return None
    try:
        return agentclient.request(capture.pid, capture.pk, op)
    except (agentclient.AgentUnavailable, OSError) as exc:
        capture.summary = {**capture.summary, "agent_error": str(exc)}
        return None


def _agent_growth(capture: ProfileCapture, started: dict[str, Any]) -> dict[str, Any]:
    stopped = _agent_request(capture, "tracemalloc_stop")
    if stopped is None or "error" in stopped:
        return {"agent_error": (stopped or {}).get("error", "the agent did not answer")}
    before, after = started["gc"], stopped["gc"]
    gc_window = {
        "collections": _minus(after["collections"], before["collections"]),
        "collected": _minus(after["collected"], before["collected"]),
        "pause_ms": _minus(after["pause_ms"], before["pause_ms"]),
    }
    return {
        "tracemalloc": {"by_line": stopped["by_line"], "by_traceback": stopped["by_traceback"]},
        "gc": gc_window,
    }


def _minus(after: list[float], before: list[float]) -> list[float]:
    return [a - b for a, b in zip(after, before, strict=True)]


def memory_trend(readings: list[monitor.Reading]) -> trend.Trend:
    return trend.fit(
        [r.elapsed_s for r in readings],
        [r.rss_bytes for r in readings],
        threshold_mb_per_min=settings.PROFILING_LEAK_MB_PER_MIN,
        warmup_fraction=settings.PROFILING_WARMUP_FRACTION,
    )
