"""The profiler's panel on the load-test run page: the run's captures, its targets' memory
trend (drawn as an inline SVG, no script) with the verdict in MB/min and per 1,000 requests,
and a link to each flame graph.

At most two queries per run: its captures (with their targets), and the memory samples of its
memory captures (none when it has none). A queued run costs no query; a run with no capture
shows no panel.
"""

from __future__ import annotations

from typing import Any

from offgridperf import access
from offgridperf.panels import (
    register_compare_panel,
    register_report_panel,
    register_run_panel,
)
from profiling import diff, trend
from profiling.models import (
    CaptureKind,
    CaptureStatus,
    FunctionStat,
    MemorySample,
    ProfileCapture,
)

SPARK_WIDTH = 320
SPARK_HEIGHT = 60
# Enough points for a 320 px wide line; longer windows are thinned evenly.
SPARK_POINTS = 160
# Functions shown on the compare page, those whose CPU share moved most.
COMPARE_ROWS = 15
# Functions a run's HTML report lists per CPU profile, those most often on top of the stack.
REPORT_TOP_FUNCTIONS = 10


def register() -> None:
    """Called once from ProfilingConfig.ready()."""
    register_run_panel(
        "profiles", "Profiles", "profiling/run_panel.html", run_profiles, access.VIEW_PROFILES
    )


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


def register_compare() -> None:
    """Called once from ProfilingConfig.ready()."""
    register_compare_panel(
        "profiles",
        "Profiles",
        "profiling/compare_panel.html",
        compare_profiles,
        access.VIEW_PROFILES,
    )


def compare_profiles(a: Any, b: Any) -> dict[str, Any] | None:
    """Both runs' memory verdicts, the functions whose CPU share changed most between their
    latest CPU profiles, and the allocators that grew between their latest allocation captures
    (read from those captures' summaries). Two queries (their captures; the two CPU profiles'
    functions)."""
    captures = list(
        ProfileCapture.objects.filter(run__in=[a.pk, b.pk], status=CaptureStatus.DONE)
        .select_related("target")
        .order_by("-pk")
    )
    if not captures:
        return None
    memory = {run.pk: [] for run in (a, b)}
    cpu: dict[int, ProfileCapture] = {}
    allocations: dict[int, ProfileCapture] = {}
    for capture in captures:
        if capture.kind == CaptureKind.MEMORY:
            memory[capture.run_id].append(capture)
        elif capture.kind == CaptureKind.CPU:
            cpu.setdefault(capture.run_id, capture)
        elif capture.kind == CaptureKind.ALLOCATIONS:
            allocations.setdefault(capture.run_id, capture)
    rows: list[dict[str, Any]] = []
    if a.pk in cpu and b.pk in cpu:
        rows = cpu_shift(cpu[a.pk], cpu[b.pk], a.requests, b.requests)
    return {
        "a": a,
        "b": b,
        "memory_a": memory[a.pk],
        "memory_b": memory[b.pk],
        "cpu_a": cpu.get(a.pk),
        "cpu_b": cpu.get(b.pk),
        "rows": rows,
        "per_request": bool(a.requests and b.requests),
        "allocations_a": allocations.get(a.pk),
        "allocations_b": allocations.get(b.pk),
        "grown": allocators_grown(allocations.get(a.pk), allocations.get(b.pk)),
    }


def allocators_grown(a: ProfileCapture | None, b: ProfileCapture | None) -> list[dict[str, Any]]:
    """The allocators that grew from allocation capture a to b; [] unless both are there."""
    if a is None or b is None:
        return []
    return diff.allocator_growth(
        (a.summary or {}).get("top_by_bytes") or [],
        (b.summary or {}).get("top_by_bytes") or [],
        limit=COMPARE_ROWS,
    )


def cpu_shift(
    a: ProfileCapture, b: ProfileCapture, a_requests: int | None, b_requests: int | None
) -> list[dict[str, Any]]:
    stats: dict[int, list[dict[str, Any]]] = {a.pk: [], b.pk: []}
    for stat in FunctionStat.objects.filter(capture_id__in=[a.pk, b.pk]).values(
        "capture_id", "function", "file", "line", "self_samples", "total_samples"
    ):
        stats[stat.pop("capture_id")].append(stat)
    return diff.diff(
        stats[a.pk],
        stats[b.pk],
        int((a.summary or {}).get("samples") or 0),
        int((b.summary or {}).get("samples") or 0),
        a_requests=a_requests,
        b_requests=b_requests,
        limit=COMPARE_ROWS,
    )


def register_report() -> None:
    """Called once from ProfilingConfig.ready()."""
    register_report_panel(
        "profiles",
        "Memory and CPU of the target",
        "profiling/report_panel.html",
        report_profiles,
        access.VIEW_PROFILES,
    )


def report_profiles(run: Any) -> dict[str, Any] | None:
    """The run page panel's memory verdicts, and the top functions of each finished CPU
    profile (by self samples), for the run's HTML report. One more query per CPU profile."""
    context = run_profiles(run)
    if context is None:
        return None
    context["cpu_top"] = [
        {
            "capture": capture,
            "functions": list(
                FunctionStat.objects.filter(capture=capture).order_by(
                    "-self_samples", "-total_samples", "pk"
                )[:REPORT_TOP_FUNCTIONS]
            ),
        }
        for capture in context["cpu"]
        if capture.status == CaptureStatus.DONE
    ]
    return context
