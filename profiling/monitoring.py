"""Continuous monitoring of every registered profile target, by a process of its own
(`manage.py monitor`, which runall starts): no Celery pool and no capture are needed.

Every PROFILING_MONITOR_INTERVAL_S each target is read once (RSS, USS, CPU %, threads, open
files, per process and summed; the agent's GC figures when it runs in the process) and kept as
a raw MonitorSample; the list of targets is read again every TARGETS_EVERY. Once a minute (by
the monitor's clock) the monitor:

- rolls complete minutes of raw readings into 1-minute rows, and complete hours of those into
  hourly rows (profiling.rollup);
- deletes each tier past its retention (RETENTION_MONITOR_*);
- every LEAK_CHECK_EVERY (5 minutes), judges the trend of the last
  PROFILING_MONITOR_LEAK_WINDOW_S of each target, only when the
  readings cover that window since the target's last restart; a `leak` raises a MonitorAlert,
  one per target until someone acknowledges it, sent through the alert channels (email,
  webhook) of the load tests the target is tied to.

A new PID behind a target (a restart) is recorded as a MonitorRestart, even across a restart
of the monitor itself (the last reading's PID is read back), and no trend spans one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psutil
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from loadtests.models import LoadTestDefinition
from offgridperf import alerting
from profiling import agentclient, monitor, rollup, services, trend
from profiling.models import (
    MonitorAlert,
    MonitorRestart,
    MonitorSample,
    ProfileTarget,
    Resolution,
    Verdict,
)

log = logging.getLogger(__name__)

MAINTENANCE_EVERY = timedelta(minutes=1)
# A leak over an hour needs no judging every minute: the fit of each target's hour of readings
# is the upkeep's dearest part.
LEAK_CHECK_EVERY = timedelta(minutes=5)
# Registered targets are looked up again this often (a new one is read from then on).
TARGETS_EVERY = timedelta(seconds=30)
# The readings must cover at least this share of the leak window (a target that was down for a
# while leaves a gap, and a shorter cover than the window is not "a leak over the window").
MIN_WINDOW_COVER = 0.9
TIERS = (
    (Resolution.RAW, Resolution.MINUTE, rollup.MINUTE_S),
    (Resolution.MINUTE, Resolution.HOUR, rollup.HOUR_S),
)
FIGURES = (
    "pid", "samples", "rss_bytes", "rss_max_bytes", "uss_bytes", "uss_max_bytes", "cpu_pct",
    "cpu_max_pct", "threads", "open_files", "gc",
)  # fmt: skip


@dataclass
class Watched:
    """What the monitor keeps of one target between readings."""

    tree: monitor.Tree | None
    last_pid: int | None


class Monitor:
    """Reads every registered target once per `tick`; `clock` gives the readings' time (tests
    pass a simulated one, so that an hour of readings takes seconds)."""

    def __init__(self, clock: Callable[[], datetime] = timezone.now) -> None:
        self.clock = clock
        self.watched: dict[int, Watched] = {}
        self.targets: list[ProfileTarget] = []
        self.targets_at: datetime | None = None
        self.maintained_at: datetime | None = None
        self.judged_at: datetime | None = None

    def tick(self) -> list[int]:
        """One reading of every target, and the minute's upkeep when due: the ids of the
        alerts raised (their delivery is the caller's to queue)."""
        now = self.clock()
        targets = self.registered(now)
        found = [(t, read) for t in targets if (read := self.read(t, now)) is not None]
        # The agents' GC figures of every process read, in one round trip to Redis.
        gc = agent_gc([r.pid for _, (_, readings) in found for r in readings])
        try:
            with transaction.atomic():
                MonitorSample.objects.bulk_create(
                    raw_sample(target, now, pid, readings, gc) for target, (pid, readings) in found
                )
        except IntegrityError:
            # A target deleted since the list was read: read the list again next time.
            log.info("monitor: a target was deleted; its readings of %s are dropped", now)
            self.targets_at = None
        for gone in set(self.watched) - {target.pk for target in targets}:
            del self.watched[gone]
        if self.maintained_at is not None and now - self.maintained_at < MAINTENANCE_EVERY:
            return []
        self.maintained_at = now
        roll_up(now)
        prune(now)
        if self.judged_at is not None and now - self.judged_at < LEAK_CHECK_EVERY:
            return []
        self.judged_at = now
        return [alert.pk for alert in check_leaks(now, list(self.watched))]

    def registered(self, now: datetime) -> list[ProfileTarget]:
        """The registered targets, looked up again every TARGETS_EVERY."""
        if self.targets_at is None or now - self.targets_at >= TARGETS_EVERY:
            self.targets, self.targets_at = list(ProfileTarget.objects.all()), now
        return self.targets

    def read(
        self, target: ProfileTarget, now: datetime
    ) -> tuple[int, list[monitor.ProcessReading]] | None:
        """The target's root PID and a reading of each of its processes now (a restart is
        recorded); None when it points at no live process."""
        watched = self.watched.get(target.pk)
        if watched is None:
            watched = self.watched[target.pk] = Watched(None, last_pid(target.pk))
        tree = _tree(target, watched.tree)
        watched.tree = tree
        if tree is None:
            return None
        try:
            readings = tree.read()
        except psutil.Error:
            watched.tree = None
            return None
        if watched.last_pid is not None and watched.last_pid != tree.pid:
            MonitorRestart.objects.create(
                target=target, at=now, old_pid=watched.last_pid, new_pid=tree.pid
            )
        watched.last_pid = tree.pid
        return tree.pid, readings


def last_pid(target_id: int) -> int | None:
    """The PID of the target's latest raw reading (a restarted monitor carries on from it)."""
    return (
        MonitorSample.objects.filter(target_id=target_id, resolution=Resolution.RAW)
        .order_by("-at")
        .values_list("pid", flat=True)
        .first()
    )


def _tree(target: ProfileTarget, tree: monitor.Tree | None) -> monitor.Tree | None:
    """The process tree to read now: the one kept while it is still the target's, else the
    process the target points at now (a command-line match is only looked up again when the
    process it found is gone: walking every process each reading would cost most)."""
    try:
        alive = tree is not None and tree.alive()
    except psutil.Error:
        alive = False
    same = alive and tree.include_children == target.include_children
    if same and (target.cmdline_match.strip() or _resolved(target) == tree.pid):
        return tree
    pid = _resolved(target)
    if pid is None:
        return None
    try:
        return monitor.Tree(pid, target.include_children)
    except psutil.Error:
        return None


def _resolved(target: ProfileTarget) -> int | None:
    try:
        return services.resolve_pid(target)
    except services.CaptureProblem:
        return None


def raw_sample(
    target: ProfileTarget,
    now: datetime,
    pid: int,
    readings: list[monitor.ProcessReading],
    gc: dict[int, dict[str, list[float]]],
) -> MonitorSample:
    total = monitor.summed(readings)
    return MonitorSample(
        target=target,
        resolution=Resolution.RAW,
        at=now,
        pid=pid,
        samples=1,
        rss_max_bytes=total["rss_bytes"],
        uss_max_bytes=total["uss_bytes"],
        cpu_max_pct=total["cpu_pct"],
        processes=[asdict(reading) for reading in readings],
        gc=summed_gc([gc[r.pid] for r in readings if r.pid in gc]),
        **total,
    )


def agent_gc(pids: list[int]) -> dict[int, dict[str, list[float]]]:
    """PID -> the agent's cumulative GC figures, for the processes that run one."""
    figures = agentclient.figures_of(pids)
    return {f["pid"]: f["gc"] for f in figures if "gc" in f and "pid" in f}


def summed_gc(found: list[dict[str, list[float]]]) -> dict[str, list[float]] | None:
    """Collections and pause ms per generation summed over a target's processes; None when
    none runs the agent."""
    if not found:
        return None
    return {
        name: [sum(gc[name][g] for gc in found) for g in range(3)]
        for name in ("collections", "pause_ms")
    }


# -- the minute's upkeep: roll-ups, retention, leaks -------------------------------------------


def roll_up(now: datetime) -> int:
    """Roll the complete minutes of raw readings and complete hours of minutes not yet rolled
    up into their tiers; the rows made. A few queries per tier, whatever the targets."""
    made = 0
    target_ids = list(ProfileTarget.objects.values_list("pk", flat=True))
    for finer, coarser, width_s in TIERS:
        end = rollup.bucket_start(now, width_s)
        width = timedelta(seconds=width_s)
        # Each target's next bucket to make starts after its last one.
        start = {
            target_id: last + width
            for target_id, last in MonitorSample.objects.filter(resolution=coarser)
            .order_by()
            .values_list("target_id")
            .annotate(last=Max("at"))
        }
        by_target: dict[int, list[dict[str, Any]]] = {}
        for row in _unrolled(finer, end, start, target_ids):
            if row["target_id"] not in start or row["at"] >= start[row["target_id"]]:
                by_target.setdefault(row.pop("target_id"), []).append(row)
        made_now = [
            MonitorSample(target_id=target_id, resolution=coarser, **bucket)
            for target_id, rows in by_target.items()
            for bucket in rollup.buckets(rows, width_s)
        ]
        MonitorSample.objects.bulk_create(made_now)
        made += len(made_now)
    return made


def _unrolled(
    finer: str, end: datetime, start: dict[int, datetime], target_ids: list[int]
) -> list[dict[str, Any]]:
    """The `finer` rows before `end` that may not be rolled up yet: every one of a target
    never rolled up, and the others' from the earliest next bucket on."""
    rows = MonitorSample.objects.filter(resolution=finer, at__lt=end).order_by()
    fields = ("target_id", "at", *FIGURES)
    found = []
    never = [target_id for target_id in target_ids if target_id not in start]
    if never:
        found += list(rows.filter(target_id__in=never).values(*fields))
    if start:
        earliest = min(start.values())
        found += list(rows.filter(target_id__in=list(start), at__gte=earliest).values(*fields))
    return found


def cutoffs(now: datetime) -> dict[str, datetime | None]:
    """The time before which each tier's rows go (None: kept for ever)."""
    hours_days = settings.RETENTION_MONITOR_HOURS_DAYS
    return {
        Resolution.RAW: now - timedelta(hours=settings.RETENTION_MONITOR_RAW_HOURS),
        Resolution.MINUTE: now - timedelta(days=settings.RETENTION_MONITOR_MINUTES_DAYS),
        Resolution.HOUR: now - timedelta(days=hours_days) if hours_days else None,
    }


def prune(now: datetime) -> int:
    """Delete the rows of each tier past its retention, and the restarts older than every
    tier that could still draw them; the rows deleted."""
    deleted = 0
    limits = cutoffs(now)
    for resolution, before in limits.items():
        if before is not None:
            old = MonitorSample.objects.filter(resolution=resolution, at__lt=before)
            deleted += old.delete()[0]
    if limits[Resolution.HOUR] is not None:
        deleted += MonitorRestart.objects.filter(at__lt=limits[Resolution.HOUR]).delete()[0]
    return deleted


def check_leaks(now: datetime, target_ids: list[int]) -> list[MonitorAlert]:
    """Judge the leak window of each target; the alerts raised (one per target at most, and
    none while the target has an alert nobody acknowledged)."""
    window = timedelta(seconds=settings.PROFILING_MONITOR_LEAK_WINDOW_S)
    open_ones = set(
        MonitorAlert.objects.filter(acknowledged_at=None).values_list("target_id", flat=True)
    )
    raised = []
    for target in ProfileTarget.objects.filter(pk__in=target_ids).exclude(pk__in=open_ones):
        fitted = window_trend(target.pk, now - window, now)
        if fitted is not None and fitted.verdict == Verdict.LEAK:
            alert = raise_alert(target, fitted, window)
            if alert is not None:
                raised.append(alert)
    return raised


def window_trend(target_id: int, since: datetime, until: datetime) -> trend.Trend | None:
    """The trend of the target's RSS over [since, until] when the readings since its last
    restart cover at least MIN_WINDOW_COVER of it; None otherwise (nothing to judge)."""
    restarted = MonitorRestart.objects.filter(
        target_id=target_id, at__gt=since, at__lte=until
    ).exists()
    if restarted:
        return None
    points = series(target_id, since, until)
    times = [(at - since).total_seconds() for at, _ in points]
    if trend.covered_s(times) < MIN_WINDOW_COVER * (until - since).total_seconds():
        return None
    return fit([(t, rss) for t, (_, rss) in zip(times, points, strict=True)])


def series(target_id: int, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """(time, mean RSS) of the target over [since, until] from the finest tier that still
    holds `since`."""
    raw_from = until - timedelta(hours=settings.RETENTION_MONITOR_RAW_HOURS)
    resolution = Resolution.RAW if since >= raw_from else Resolution.MINUTE
    return list(
        MonitorSample.objects.filter(
            target_id=target_id, resolution=resolution, at__gte=since, at__lte=until
        )
        .order_by("at")
        .values_list("at", "rss_bytes")
    )


def fit(points: list[tuple[float, float]]) -> trend.Trend:
    """The trend rule of captures, applied to (seconds, RSS bytes)."""
    return trend.fit(
        [t for t, _ in points],
        [rss for _, rss in points],
        threshold_mb_per_min=settings.PROFILING_LEAK_MB_PER_MIN,
        warmup_fraction=settings.PROFILING_WARMUP_FRACTION,
    )


def raise_alert(
    target: ProfileTarget, fitted: trend.Trend, window: timedelta
) -> MonitorAlert | None:
    """The target's new alert with its deliveries pending; None when one is open already."""
    hours = window.total_seconds() / 3600
    message = (
        f"{target.name}: memory leaks {fitted.slope_mb_per_min:.2f} MB/min over the last "
        f"{hours:g} h (threshold {fitted.threshold_mb_per_min:g} MB/min): {fitted.reason}."
    )
    details = {**fitted.as_dict(), "window_s": window.total_seconds()}
    try:
        with transaction.atomic():
            alert = MonitorAlert.objects.create(
                target=target, message=message, details=details, deliveries=channels(target)
            )
    except IntegrityError:  # another monitor raised it first
        return None
    log.warning("alert: %s", message)
    return alert


def channels(target: ProfileTarget) -> dict[str, dict[str, Any]]:
    """The deliveries of a target's alert: the email and webhook channels of the load tests
    it is tied to, each address and URL once."""
    found: dict[str, dict[str, Any]] = {}
    for definition in target.load_tests.all().order_by("name"):
        for address in alerting.parse_emails(definition.alert_emails or ""):
            found.setdefault(f"email:{address}", _pending("email", address, definition.pk))
        url = definition.alert_webhook_url
        if url:
            shown = alerting.shown_url(url)
            found.setdefault(f"webhook:{shown}", _pending("webhook", shown, definition.pk))
    return found


def _pending(channel: str, destination: str, definition_id: int) -> dict[str, Any]:
    # The webhook's URL is read from its definition when sent: credentials stay off this row.
    return {
        "channel": channel,
        "destination": destination,
        "definition": definition_id,
        "status": "pending",
        "attempts": 0,
        "error": "",
    }


# -- delivery and acknowledgement --------------------------------------------------------------


def deliver(alert_id: int) -> float | None:
    """One attempt at each pending delivery of the alert; the seconds to wait before the next
    attempt when one is still pending (2, 4, 8 ... s, up to ALERT_MAX_ATTEMPTS), else None."""
    alert = MonitorAlert.objects.select_related("target").filter(pk=alert_id).first()
    if alert is None:
        return None
    retry: float | None = None
    for delivery in alert.deliveries.values():
        if delivery["status"] != "pending":
            continue
        delivery["attempts"] += 1
        try:
            _send(alert, delivery)
        except alerting.DeliveryError as exc:
            delivery["error"] = f"Attempt {delivery['attempts']}: {exc}"
            if delivery["attempts"] >= settings.ALERT_MAX_ATTEMPTS:
                delivery["status"] = "failed"
            else:
                wait = float(alerting.backoff_s(delivery["attempts"]))
                retry = wait if retry is None else min(retry, wait)
        else:
            delivery["status"], delivery["error"] = "sent", ""
    alert.save(update_fields=["deliveries"])
    return retry


def _send(alert: MonitorAlert, delivery: dict[str, Any]) -> None:
    body = payload(alert)
    if delivery["channel"] == "email":
        subject = f"[offgridperf] Memory leak: {alert.target.name}"
        alerting.email(
            subject, f"{alert.message}\n\nTarget: {body['target_url']}\n", [delivery["destination"]]
        )
        return
    url = _webhook_url(delivery)
    if not url:
        raise alerting.DeliveryError("The load test no longer has this webhook.")
    alerting.post_webhook(url, body)


def _webhook_url(delivery: dict[str, Any]) -> str:
    url = (
        LoadTestDefinition.objects.filter(pk=delivery["definition"])
        .values_list("alert_webhook_url", flat=True)
        .first()
    )
    return url if url and alerting.shown_url(url) == delivery["destination"] else ""


def payload(alert: MonitorAlert) -> dict[str, Any]:
    """What the webhook receives: names, ids, the message and the fit's numbers, no secret."""
    path = reverse("profiling:target", args=[alert.target_id])
    return {
        "target": alert.target.name,
        "target_id": alert.target_id,
        "kind": "memory_leak",
        "message": alert.message,
        "target_url": settings.OFFGRIDPERF_BASE_URL.rstrip("/") + path,
        "numbers": {k: v for k, v in alert.details.items() if not _nan(v)},
        "created_at": alert.created_at.isoformat(),
    }


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def acknowledge(alert_id: int, user: Any) -> bool:
    """Record who acknowledged the alert and when; False when it was already acknowledged.
    From then on a leak of its target raises a new alert."""
    return bool(
        MonitorAlert.objects.filter(pk=alert_id, acknowledged_at=None).update(
            acknowledged_at=timezone.now(), acknowledged_by=user
        )
    )
