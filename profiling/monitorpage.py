"""Read side of a monitored target's page: its memory, CPU, threads and files over the last
hour, day or week, the trend verdict of the shown window, restarts, load-test runs and the
agent's GC figures, in a fixed number of queries (at most seven) whatever the window holds.

Each window reads the tier that suits it (raw readings for 1 h, 1-minute rows for 24 h, hourly
rows for 7 d), then the finer tiers after the last coarse bucket, so that the latest minutes
are never missing while they wait for their roll-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from loadtests.models import LoadTestRun
from profiling import monitoring, rollup, trend
from profiling.models import MonitorAlert, MonitorRestart, MonitorSample, ProfileTarget, Resolution
from profiling.pages import MAX_MEMORY_POINTS, thinned

MB = 1_000_000
GC_FIGURES = ("collections", "pause_ms")
RUNS_SHOWN = 50
ALERTS_SHOWN = 10


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    width: timedelta
    resolution: str
    shown: str


WINDOWS = {
    window.key: window
    for window in (
        Window("1h", "1 hour", timedelta(hours=1), Resolution.RAW, "raw readings"),
        Window("24h", "24 hours", timedelta(hours=24), Resolution.MINUTE, "1-minute means"),
        Window("7d", "7 days", timedelta(days=7), Resolution.HOUR, "hourly means"),
    )
}
DEFAULT_WINDOW = "1h"
# Coarse to fine, with the time one row of each stands for.
TIERS = (
    (Resolution.HOUR, rollup.HOUR_S),
    (Resolution.MINUTE, rollup.MINUTE_S),
    (Resolution.RAW, 0),
)
FIELDS = (
    "at", "pid", "samples", "rss_bytes", "rss_max_bytes", "uss_bytes", "cpu_pct", "cpu_max_pct",
    "threads", "open_files", "gc",
)  # fmt: skip


def window_problem(key: str) -> str | None:
    if key in WINDOWS:
        return None
    return f"window: must be one of {', '.join(WINDOWS)}"


def rows_of(target_id: int, window: Window, now: datetime) -> list[dict[str, Any]]:
    """The target's rows over the window: the window's tier, then each finer tier after the
    last coarse row's bucket (one query per tier)."""
    since, found = now - window.width, []
    start = next(i for i, (resolution, _) in enumerate(TIERS) if resolution == window.resolution)
    for resolution, width_s in TIERS[start:]:
        rows = list(
            MonitorSample.objects.filter(
                target_id=target_id, resolution=resolution, at__gte=since, at__lte=now
            )
            .order_by("at")
            .values(*FIELDS)
        )
        found += rows
        if rows:
            # A raw row stands for its instant: the next tier starts just after it.
            since = rows[-1]["at"] + timedelta(seconds=width_s or 0.000001)
    return found


def chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The series the page draws (x in ms since the epoch); a gap where the PID changes, so
    that no line joins two processes."""
    shown = thinned(rows, MAX_MEMORY_POINTS)
    series: dict[str, list[Any]] = {
        name: []
        for name in ("t", "rss_mb", "rss_max_mb", "uss_mb", "cpu_pct", "threads", "open_files")
    }
    gc: dict[str, list[list[float | None]]] = {name: [[], [], []] for name in GC_FIGURES}
    previous: dict[str, Any] | None = None
    for row in shown:
        if previous is not None and previous["pid"] != row["pid"]:
            _gap(series, gc, row["at"])
        _point(series, row)
        _gc_point(gc, previous, row)
        previous = row
    return {**series, "gc": gc, "has_gc": any(row["gc"] for row in shown)}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 3)


def _point(series: dict[str, list[Any]], row: dict[str, Any]) -> None:
    series["t"].append(_ms(row["at"]))
    series["rss_mb"].append(_mb(row["rss_bytes"]))
    series["rss_max_mb"].append(_mb(row["rss_max_bytes"]))
    series["uss_mb"].append(_mb(row["uss_bytes"]))
    series["cpu_pct"].append(row["cpu_pct"])
    series["threads"].append(row["threads"])
    series["open_files"].append(row["open_files"])


def _gap(series: dict[str, list[Any]], gc: dict[str, list[list[Any]]], at: datetime) -> None:
    series["t"].append(_ms(at) - 1)
    for name, values in series.items():
        if name != "t":
            values.append(None)
    for per_generation in gc.values():
        for values in per_generation:
            values.append(None)


def _gc_point(
    gc: dict[str, list[list[Any]]], previous: dict[str, Any] | None, row: dict[str, Any]
) -> None:
    """Collections and pause ms per generation since the previous point (the agent's figures
    are cumulative; a fall is a restarted process, drawn as a gap)."""
    before = (previous or {}).get("gc") if previous and previous["pid"] == row["pid"] else None
    now = row["gc"]
    for name, per_generation in gc.items():
        for generation, values in enumerate(per_generation):
            if not before or not now:
                values.append(None)
                continue
            delta = now[name][generation] - before[name][generation]
            values.append(round(delta, 3) if delta >= 0 else None)


def window_fit(
    rows: list[dict[str, Any]], restarts: list[MonitorRestart], since: datetime
) -> dict[str, Any]:
    """The trend verdict of the shown window, over the readings since its last restart."""
    start = max([since, *(restart.at for restart in restarts)])
    points = [((row["at"] - start).total_seconds(), row["rss_bytes"]) for row in rows]
    points = [point for point in points if point[0] >= 0]
    fitted = monitoring.fit(points) if points else None
    return {
        "fit": fitted.as_dict() if fitted else None,
        "fit_from": start,
        "fit_since_restart": start > since,
    }


def runs_in(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The load-test runs that overlap [since, until], for the chart's bands."""
    runs = (
        LoadTestRun.objects.filter(started_at__lte=until)
        .filter(Q(finished_at=None) | Q(finished_at__gte=since))
        .order_by("started_at")
        .values("id", "name", "status", "started_at", "finished_at")[:RUNS_SHOWN]
    )
    return [
        {
            "id": run["id"],
            "label": f"run #{run['id']} {run['name']}",
            "status": run["status"],
            "from": _ms(max(run["started_at"], since)),
            "to": _ms(min(run["finished_at"] or until, until)),
        }
        for run in runs
    ]


def target_context(target: ProfileTarget, window_key: str, now: datetime) -> dict[str, Any]:
    window = WINDOWS[window_key]
    since = now - window.width
    rows = rows_of(target.pk, window, now)
    restarts = list(MonitorRestart.objects.filter(target=target, at__gte=since, at__lte=now))
    latest = rows[-1] if rows else None
    return {
        "target": target,
        "window": window,
        "windows": list(WINDOWS.values()),
        "latest": latest,
        "latest_processes": _processes_now(target.pk) if latest else [],
        "restarts": restarts,
        "runs": runs_in(since, now),
        "chart": {
            **chart(rows),
            "from": _ms(since),
            "to": _ms(now),
            "restarts": [{"t": _ms(r.at), "label": f"{r.old_pid} → {r.new_pid}"} for r in restarts],
        },
        "row_count": len(rows),
        "alerts": list(
            MonitorAlert.objects.filter(target=target)
            .select_related("acknowledged_by")
            .order_by("-created_at")[:ALERTS_SHOWN]
        ),
        "interval_s": settings.PROFILING_MONITOR_INTERVAL_S,
        "leak_window_h": settings.PROFILING_MONITOR_LEAK_WINDOW_S / 3600,
        "min_cover_pct": round(monitoring.MIN_WINDOW_COVER * 100),
        "verdict_rules": trend.rules(settings.PROFILING_LEAK_MB_PER_MIN),
        **window_fit(rows, restarts, since),
    }


def _processes_now(target_id: int) -> list[dict[str, Any]]:
    """The processes of the latest raw reading, each with its own figures."""
    processes = (
        MonitorSample.objects.filter(target_id=target_id, resolution=Resolution.RAW)
        .order_by("-at")
        .values_list("processes", flat=True)
        .first()
    )
    return [
        {**p, "rss_mb": _mb(p.get("rss_bytes")), "uss_mb": _mb(p.get("uss_bytes"))}
        for p in processes or []
    ]


def monitored_targets() -> list[ProfileTarget]:
    """Every target with `open_alerts`, its count of open leak alerts, for the profiles page
    (one query, which also gives the take form its choices)."""
    open_alerts = Count("monitor_alerts", filter=Q(monitor_alerts__acknowledged_at=None))
    targets = ProfileTarget.objects.only("id", "name", "include_children").order_by("name")
    return list(targets.annotate(open_alerts=open_alerts))
