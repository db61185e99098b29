"""The profiler's panel on the load-test run page: the run's captures, its targets' memory
trend (drawn as an inline SVG, no script) with the verdict in MB/min and per 1,000 requests,
and a link to each flame graph.

At most two queries per run: its captures (with their targets), and the memory samples of its
memory captures (none when it has none). A queued run costs no query; a run with no capture
shows no panel.
"""

from __future__ import annotations

from typing import Any

from offgridperf.panels import register_run_panel
from profiling import trend
from profiling.models import CaptureKind, MemorySample, ProfileCapture

SPARK_WIDTH = 320
SPARK_HEIGHT = 60
# Enough points for a 320 px wide line; longer windows are thinned evenly.
SPARK_POINTS = 160


def register() -> None:
    """Called once from ProfilingConfig.ready()."""
    register_run_panel("profiles", "Profiles", "profiling/run_panel.html", run_profiles)


def run_profiles(run: Any) -> dict[str, Any] | None:
    if run.started_at is None:
        return None  # a queued run: nothing can have been captured during it yet
    captures = list(
        ProfileCapture.objects.filter(run=run).select_related("target").order_by("kind", "pk")
    )
    if not captures:
        return None
    memory_ids = [c.pk for c in captures if c.kind == CaptureKind.MEMORY]
    samples: dict[int, list[tuple[float, int]]] = {pk: [] for pk in memory_ids}
    rows = MemorySample.objects.filter(capture_id__in=memory_ids).order_by(
        "capture_id", "elapsed_s"
    )
    for capture_id, elapsed, rss in rows.values_list("capture_id", "elapsed_s", "rss_bytes"):
        samples[capture_id].append((elapsed, rss))
    return {
        "run": run,
        "memory": [_memory_row(c, samples[c.pk], run) for c in captures if c.pk in samples],
        "cpu": [c for c in captures if c.kind == CaptureKind.CPU],
        "others": [c for c in captures if c.kind not in (CaptureKind.MEMORY, CaptureKind.CPU)],
    }


def _memory_row(capture: ProfileCapture, points: list[tuple[float, int]], run: Any) -> dict:
    summary = capture.summary or {}
    slope = summary.get("slope_mb_per_min")
    return {
        "capture": capture,
        "summary": summary,
        "per_1000_requests": (
            trend.per_thousand_requests(slope, run.throughput_rps or 0.0)
            if slope is not None
            else None
        ),
        "spark": sparkline(points, summary),
        "last_mb": points[-1][1] / 1e6 if points else None,
    }


def sparkline(points: list[tuple[float, int]], summary: dict[str, Any]) -> dict[str, Any] | None:
    """SVG polyline coordinates of RSS over time, and of the fitted trend line."""
    if len(points) < 2:
        return None
    step = max(1, len(points) // SPARK_POINTS)
    shown = points[::step]
    t0, t1 = points[0][0], points[-1][0] or 1.0
    values = [rss / 1e6 for _, rss in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0

    def xy(t: float, mb: float) -> str:
        x = (t - t0) / ((t1 - t0) or 1.0) * SPARK_WIDTH
        y = SPARK_HEIGHT - (mb - low) / span * (SPARK_HEIGHT - 4) - 2
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, rss / 1e6) for t, rss in shown)
    fitted = None
    intercept, slope = summary.get("intercept_mb"), summary.get("slope_mb_per_min")
    if intercept is not None and slope is not None:
        start = float(summary.get("warmup_s") or t0)
        fitted = " ".join(xy(t, intercept + slope / 60 * t) for t in (start, t1))
    return {
        "width": SPARK_WIDTH,
        "height": SPARK_HEIGHT,
        "line": line,
        "fit": fitted,
        "low_mb": low,
        "high_mb": high,
    }
