"""The continuous monitor against real processes: an hour of readings is simulated with a clock
that advances PROFILING_MONITOR_INTERVAL_S-like steps while the real process runs for seconds."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from profiling import monitoring
from profiling.models import (
    MonitorAlert,
    MonitorRestart,
    MonitorSample,
    ProfileTarget,
    Resolution,
)

pytestmark = pytest.mark.django_db

STEP = timedelta(seconds=30)
HOUR_OF_READINGS = 120  # at STEP


class Clock:
    """Simulated time: each reading moves it on by STEP."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta = STEP) -> None:
        self.now += by


def run(watcher: monitoring.Monitor, clock: Clock, readings: int, pause_s: float = 0.02) -> None:
    for _ in range(readings):
        watcher.tick()
        clock.advance()
        time.sleep(pause_s)


@pytest.fixture
def hour_scale(settings: Any) -> None:
    # The real process grows for a few seconds of an "hour": its MB/min are scaled down alike.
    settings.PROFILING_MONITOR_LEAK_WINDOW_S = 3600
    settings.PROFILING_LEAK_MB_PER_MIN = 0.05


@pytest.mark.slow
@pytest.mark.usefixtures("hour_scale")
def test_it_does_not_call_a_warm_up_then_flat_a_leak_over_an_hour(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    process = program("warm-up")
    target = ProfileTarget.objects.create(name="warms", pid=process.pid)
    clock = Clock()
    watcher = monitoring.Monitor(clock)
    run(watcher, clock, HOUR_OF_READINGS + 4)
    assert not MonitorAlert.objects.exists()
    fitted = monitoring.window_trend(target.pk, clock.now - timedelta(hours=1), clock.now)
    assert fitted is not None
    assert fitted.verdict == "stable", fitted.reason
    assert "warm-up" in fitted.reason


@pytest.mark.slow
@pytest.mark.usefixtures("hour_scale")
def test_it_raises_a_leak_alert_once_until_acknowledged(
    program: Callable[..., subprocess.Popen[str]], admin_user: Any
) -> None:
    process = program("leak")
    target = ProfileTarget.objects.create(name="leaks", pid=process.pid)
    clock = Clock()
    watcher = monitoring.Monitor(clock)
    run(watcher, clock, HOUR_OF_READINGS - 20)
    # Readings that cover less than 90% of the hour are not judged.
    assert not MonitorAlert.objects.exists()
    run(watcher, clock, 30)  # past the hour: a leak, judged every 5 minutes
    alert = MonitorAlert.objects.get()
    assert alert.target == target
    assert alert.details["verdict"] == "leak"
    assert "memory leaks" in alert.message
    assert monitoring.acknowledge(alert.pk, admin_user)
    assert not monitoring.acknowledge(alert.pk, admin_user)
    run(watcher, clock, 12)  # the next judgement raises it again
    assert MonitorAlert.objects.count() == 2
    assert MonitorAlert.objects.filter(acknowledged_at=None).count() == 1


def test_it_marks_a_restart_behind_the_same_command_line(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    token = f"monitor-restart-{uuid.uuid4().hex}"
    first = program("steady", token)
    target = ProfileTarget.objects.create(name="restarts", cmdline_match=token)
    clock = Clock()
    watcher = monitoring.Monitor(clock)
    run(watcher, clock, 3)
    first.kill()
    first.wait()
    second = program("steady", token)
    run(watcher, clock, 3)
    # A monitor started afresh carries on from the last reading's PID: no second restart.
    run(monitoring.Monitor(clock), clock, 2)
    restart = MonitorRestart.objects.get(target=target)
    assert (restart.old_pid, restart.new_pid) == (first.pid, second.pid)
    pids = list(
        MonitorSample.objects.filter(target=target, resolution=Resolution.RAW)
        .order_by("at")
        .values_list("pid", flat=True)
    )
    assert pids == [first.pid] * 3 + [second.pid] * 5
    raw = MonitorSample.objects.filter(resolution=Resolution.RAW, pid=second.pid)
    assert restart.at == raw.order_by("at").first().at


def test_it_reads_each_process_of_a_target_with_children_and_their_sum(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    parent = program("parent")
    child_pid = int(parent.stdout.readline())
    target = ProfileTarget.objects.create(name="tree", pid=parent.pid, include_children=True)
    clock = Clock()
    run(monitoring.Monitor(clock), clock, 2)
    sample = MonitorSample.objects.filter(target=target).latest("at")
    assert {p["pid"] for p in sample.processes} == {parent.pid, child_pid}
    assert sample.rss_bytes == sum(p["rss_bytes"] for p in sample.processes)
    assert sample.threads == sum(p["threads"] for p in sample.processes) >= 2
    assert sample.open_files is not None and sample.open_files > 0


def _raw(target: ProfileTarget, at: datetime, rss: int, pid: int = 100) -> MonitorSample:
    return MonitorSample(
        target=target,
        resolution=Resolution.RAW,
        at=at,
        pid=pid,
        rss_bytes=rss,
        rss_max_bytes=rss,
        cpu_pct=10.0,
        cpu_max_pct=10.0,
        threads=3,
    )


def test_it_rolls_readings_into_minutes_and_hours_and_prunes_each_tier(settings: Any) -> None:
    target = ProfileTarget.objects.create(name="rolled", pid=1)
    now = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
    start = now.replace(minute=0, second=0) - timedelta(hours=2)  # 10:00
    # Every 5 s from 10:00 to 12:00:25; in each minute RSS is 100, 110, ..., 210 MB.
    rows = [
        _raw(target, start + timedelta(seconds=5 * i), (100 + 10 * (i % 12)) * 1_000_000)
        for i in range(12 * 120 + 6)
    ]
    MonitorSample.objects.bulk_create(rows)
    assert monitoring.roll_up(now) == 120 + 2  # the complete minutes, then the complete hours
    minutes = MonitorSample.objects.filter(target=target, resolution=Resolution.MINUTE)
    assert minutes.count() == 120
    first = minutes.order_by("at").first()
    assert first.at == start
    assert (first.samples, first.rss_bytes, first.rss_max_bytes) == (12, 155_000_000, 210_000_000)
    hours = MonitorSample.objects.filter(target=target, resolution=Resolution.HOUR)
    assert [h.samples for h in hours.order_by("at")] == [720, 720]
    assert monitoring.roll_up(now) == 0  # nothing twice
    assert monitoring.roll_up(now + timedelta(minutes=1)) == 1  # 12:00, now complete

    settings.RETENTION_MONITOR_RAW_HOURS = 1
    settings.RETENTION_MONITOR_MINUTES_DAYS = 1
    settings.RETENTION_MONITOR_HOURS_DAYS = 0
    monitoring.prune(now)
    raw = MonitorSample.objects.filter(target=target, resolution=Resolution.RAW)
    assert raw.count() == 12 * 60  # 11:00:30 on
    assert raw.order_by("at").first().at == now - timedelta(hours=1)
    monitoring.prune(now + timedelta(days=1, hours=1))
    assert not MonitorSample.objects.filter(resolution__in=["raw", "minute"]).exists()
    assert hours.count() == 2  # hourly rows are kept for ever (0 days)


# Committed for real: PostgreSQL checks the deleted target's key when the readings commit.
@pytest.mark.django_db(transaction=True)
def test_it_carries_on_when_a_target_is_deleted_while_it_reads(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    process = program("threads")
    gone = ProfileTarget.objects.create(name="gone", pid=process.pid)
    stays = ProfileTarget.objects.create(name="stays", pid=process.pid)
    clock = Clock()
    watcher = monitoring.Monitor(clock)
    watcher.tick()
    gone.delete()
    clock.advance(timedelta(seconds=5))
    watcher.tick()  # its list, read 5 s ago, still holds the deleted one: this reading is lost
    clock.advance(timedelta(seconds=5))
    watcher.tick()
    assert MonitorSample.objects.filter(target=stays).count() == 2
