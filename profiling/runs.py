"""Profiles tied to load-test runs. A definition's profile targets (ProfileTarget.load_tests)
have, for each of its runs, their memory recorded from start to end and a CPU profile taken
over the steady state (after the ramp-up, before the last tenth of the run). A target with
allocations_during_runs has an allocation capture (memray) too, over the second half of the
steady state, after the CPU profile over the first: memray slows every allocation, which a
CPU profile taken at the same time would blame on the service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections, connection

from loadtests.models import LoadTestRun, RunStatus
from profiling import services
from profiling.models import CaptureKind, CaptureStatus, ProfileCapture, ProfileTarget

# After the run's planned end, the memory monitor waits this long for the run to be finished.
GRACE_S = 30
STATUS_CHECK_S = 1.0


@dataclass(frozen=True)
class Window:
    start_s: float
    duration_s: float


def steady_window(run: LoadTestRun) -> Window:
    """Where the steady state of `run` lies: after its first stage when it ramps in stages,
    else after the first tenth; up to the last tenth."""
    planned = float(run.planned_duration_s or run.config.get("duration_s") or 0)
    stages = run.config.get("stages") or []
    ramp = float(stages[0]["duration_s"]) if len(stages) > 1 else planned * 0.1
    end = planned * 0.9
    if end - ramp < 1:
        ramp, end = 0.0, max(planned, 1.0)
    return Window(start_s=ramp, duration_s=end - ramp)


def halves(window: Window) -> tuple[Window, Window]:
    """The first and second half of `window`."""
    half = window.duration_s / 2
    return Window(window.start_s, half), Window(window.start_s + half, half)


def targets_of(run: LoadTestRun) -> list[ProfileTarget]:
    if run.definition_id is None:
        return []
    return list(ProfileTarget.objects.filter(load_tests=run.definition_id))


def profile_run(run_id: int, target_id: int) -> list[int]:
    """Record the target's memory throughout run `run_id` and its CPU over the steady window;
    the ids of the captures taken. Runs on a worker beside the load test."""
    run = LoadTestRun.objects.get(pk=run_id)
    target = ProfileTarget.objects.get(pk=target_id)
    window = steady_window(run)
    planned = float(run.planned_duration_s or window.duration_s)
    memory = services.create_capture(
        CaptureKind.MEMORY,
        target=target,
        duration_s=min(planned + GRACE_S, services.settings.PROFILING_MAX_DURATION_S),
        run=run,
        created_by="run",
    )
    cpu_window, heap_window = halves(window) if target.allocations_during_runs else (window, None)
    cpu = services.create_capture(
        CaptureKind.CPU, target=target, duration_s=cpu_window.duration_s, run=run, created_by="run"
    )
    steady = [cpu]
    if heap_window is not None:
        steady.append(
            services.create_capture(
                CaptureKind.ALLOCATIONS,
                target=target,
                duration_s=heap_window.duration_s,
                include_children=False,
                run=run,
                created_by="run",
            )
        )
    monitor = threading.Thread(
        target=_in_thread, args=(memory.pk, run_id), name=f"profile-run-{run_id}-memory"
    )
    monitor.start()
    started = time.monotonic()
    while time.monotonic() - started < window.start_s and _running(run_id):
        time.sleep(min(STATUS_CHECK_S, window.start_s))
    for capture in steady:
        if _running(run_id):
            services.execute(capture.pk, should_stop=ended(run_id))
        else:
            ProfileCapture.objects.filter(pk=capture.pk).update(
                status=CaptureStatus.ERROR, error="the run ended before its steady state"
            )
    monitor.join()
    return [memory.pk, *(capture.pk for capture in steady)]


def ended(run_id: int) -> Callable[[], bool]:
    """Whether run `run_id` has ended, asked of the database at most once a second."""
    checked = {"at": 0.0, "running": True}

    def run_ended() -> bool:
        now = time.monotonic()
        if now - checked["at"] >= STATUS_CHECK_S:
            checked["at"], checked["running"] = now, _running(run_id)
        return not checked["running"]

    return run_ended


def _in_thread(capture_id: int, run_id: int) -> None:
    try:
        close_old_connections()
        services.execute(capture_id, should_stop=ended(run_id))
    finally:
        connection.close()


def _running(run_id: int) -> bool:
    return LoadTestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists()
