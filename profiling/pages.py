"""Read side of the profiler's pages: the captures list, one capture by its kind, the diff of
two CPU captures.

Like loadtests' pages, every function runs a fixed number of queries whatever the number of
captures, functions and samples (lists are paginated or limited). Artefacts are read from disk
only through services.artefact_path, so no name leads out of the artefact directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from loadtests.models import LoadTestRun
from profiling import availability, diff, services, speedscope, trend
from profiling.models import (
    CaptureKind,
    CaptureStatus,
    FunctionStat,
    MemorySample,
    ProfileCapture,
)

log = logging.getLogger(__name__)

FUNCTIONS_SHOWN = 100
# A CPU capture's page lists this many top functions; "show all" (?all=1) lists them all.
FUNCTIONS_TOP = 20
# A trace page hands at most this many chrometrace events to the browser.
MAX_TRACE_EVENTS = 20_000
# Memory charts: beyond this many samples every n-th one is drawn (the fit used them all).
MAX_MEMORY_POINTS = 2000
DIFF_CHOICES = 100
DIFF_ROWS = 50
MB = 1_000_000

# What the list shows; never the summary (a thread dump's can be large) or the artefacts.
LIST_FIELDS = (
    "id", "kind", "target", "target__name", "pid", "status", "verdict", "run_id", "duration_s",
    "started_at", "finished_at", "created_at", "error",
)  # fmt: skip


# -- captures list ---------------------------------------------------------------------------


def filtered_captures(filters: dict[str, Any]) -> QuerySet[ProfileCapture]:
    """Captures newest first, narrowed by the cleaned list filters."""
    captures = ProfileCapture.objects.select_related("target").only(*LIST_FIELDS)
    for name, lookup in (("target", "target_id"), ("kind", "kind"), ("run", "run_id")):
        if name in filters:
            captures = captures.filter(**{lookup: filters[name]})
    if "status" in filters:
        captures = captures.filter(status=filters["status"])
    return captures.order_by("-created_at", "-id")


# -- one capture ----------------------------------------------------------------------------


def _read_json(capture: ProfileCapture, name: str) -> Any:
    """An artefact's JSON, or None when it is gone from disk or unreadable."""
    path = services.artefact_path(capture, name)
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("capture %s: artefact %s is not readable JSON", capture.pk, name)
        return None


def cpu_context(capture: ProfileCapture, *, show_all: bool = False) -> dict[str, Any]:
    doc = _read_json(capture, "speedscope")
    functions = list(capture.function_stats.all()[:FUNCTIONS_SHOWN])
    return {
        "flame": speedscope.flame_tree(doc) if isinstance(doc, dict) else None,
        "functions": functions if show_all else functions[:FUNCTIONS_TOP],
        "functions_total": len(functions),
        "functions_top": FUNCTIONS_TOP,
        "functions_all": show_all,
    }


def thinned(rows: Sequence[Any], limit: int) -> list[Any]:
    """At most about `limit` of `rows`, evenly spaced, the last one always kept."""
    if len(rows) <= limit:
        return list(rows)
    step = -(-len(rows) // limit)
    kept = list(rows[::step])
    return kept if kept[-1] is rows[-1] else [*kept, rows[-1]]


def trend_line(summary: dict[str, Any], end_s: float) -> list[dict[str, float]]:
    """The fitted RSS line (MB) from the end of the warm-up to `end_s`; [] without a fit."""
    slope, intercept = summary.get("slope_mb_per_min"), summary.get("intercept_mb")
    if slope is None or intercept is None:
        return []
    start_s = float(summary.get("warmup_s") or 0.0)
    return [
        {"x": t, "y": round(intercept + slope / 60.0 * t, 3)}
        for t in (start_s, max(end_s, start_s))
    ]


def memory_context(capture: ProfileCapture) -> dict[str, Any]:
    rows = list(
        capture.memory_samples.order_by("elapsed_s").values_list(
            "elapsed_s", "rss_bytes", "uss_bytes"
        )
    )
    shown = thinned(rows, MAX_MEMORY_POINTS)
    summary = capture.summary or {}
    chart = {
        "t": [round(t, 3) for t, _, _ in shown],
        "rss_mb": [round(rss / MB, 3) for _, rss, _ in shown],
        "uss_mb": [round(uss / MB, 3) if uss is not None else None for _, _, uss in shown],
        "trend": trend_line(summary, rows[-1][0] if rows else 0.0),
        "warmup_s": summary.get("warmup_s"),
    }
    return {
        "memory_chart": chart,
        "sample_count": len(rows),
        "thinned": len(shown) < len(rows),
        "fit": summary,
        "verdict_rules": trend.rules(
            summary.get("threshold_mb_per_min") or settings.PROFILING_LEAK_MB_PER_MIN
        ),
        "tracemalloc": tracemalloc_growth(summary.get("tracemalloc")),
        "gc_stats": gc_rows(summary.get("gc")),
        "agent_error": summary.get("agent_error", ""),
        "agent_note": availability.agent_note(summary, capture.pid),
    }


def live_samples(capture_id: int, after_s: float) -> list[list[float | None]]:
    """A running memory capture's samples after `after_s` (elapsed s): [s, RSS MB, USS MB],
    at most MAX_MEMORY_POINTS per call (its page polls for the rest)."""
    rows = (
        MemorySample.objects.filter(capture_id=capture_id, elapsed_s__gt=after_s)
        .order_by("elapsed_s")
        .values_list("elapsed_s", "rss_bytes", "uss_bytes")[:MAX_MEMORY_POINTS]
    )
    # Elapsed seconds unrounded: the page sends the last one back as ?after=.
    return [
        [t, round(rss / MB, 3), round(uss / MB, 3) if uss is not None else None]
        for t, rss, uss in rows
    ]


GC_COLUMNS = ("collections", "collected", "pause_ms")


def gc_rows(gc: Any) -> list[dict[str, Any]]:
    """Per-generation GC statistics as table rows. The agent stores columns ({"collections":
    [gen 0, gen 1, gen 2], ...}); a list of per-generation dicts is read as well."""
    if isinstance(gc, dict) and any(isinstance(gc.get(k), list) for k in GC_COLUMNS):
        generations = max(len(gc.get(k) or []) for k in GC_COLUMNS)
        gc = [
            {k: (gc.get(k) or [None] * generations)[g] for k in GC_COLUMNS}
            for g in range(generations)
        ]
    if not isinstance(gc, list):
        return []
    return [
        {"generation": row.get("generation", index), **{k: row.get(k) for k in GC_COLUMNS}}
        for index, row in enumerate(gc)
        if isinstance(row, dict)
    ]


def tracemalloc_growth(growth: Any) -> dict[str, list[dict[str, Any]]]:
    """tracemalloc's top growth by line and by traceback; a plain list is read as by line."""
    if isinstance(growth, list):
        growth = {"by_line": growth}
    if not isinstance(growth, dict):
        return {"by_line": [], "by_traceback": []}
    return {
        "by_line": list(growth.get("by_line") or []),
        "by_traceback": list(growth.get("by_traceback") or []),
    }


def trace_events(chrometrace: Any, limit: int = MAX_TRACE_EVENTS) -> dict[str, Any]:
    """The first `limit` events of a chrometrace document, compacted for the timeline:
    [thread index, phase, timestamp µs, duration µs or None, name], threads in order seen."""
    events = chrometrace.get("traceEvents", []) if isinstance(chrometrace, dict) else chrometrace
    events = events if isinstance(events, list) else []
    threads: dict[Any, dict[str, Any]] = {}
    compact = []
    for event in events[:limit]:
        if not isinstance(event, dict):
            continue
        tid = event.get("tid")
        thread = threads.setdefault(tid, {"tid": tid, "name": f"thread {tid}"})
        if event.get("ph") == "M" and event.get("name") == "thread_name":
            thread["name"] = str((event.get("args") or {}).get("name") or thread["name"])
            continue
        if event.get("ph") not in ("B", "E", "X"):
            continue
        compact.append(
            [
                list(threads).index(tid),
                event["ph"],
                event.get("ts", 0),
                event.get("dur"),
                str(event.get("name", "?")),
            ]
        )
    return {
        "threads": list(threads.values()),
        "events": compact,
        "total": len(events),
        "truncated": len(events) > limit,
    }


def trace_context(capture: ProfileCapture) -> dict[str, Any]:
    doc = _read_json(capture, "chrometrace")
    return {"trace": trace_events(doc) if doc is not None else None}


def allocations_context(capture: ProfileCapture) -> dict[str, Any]:
    """The bytes allocated by stack as a flame graph (from its artefact), and the summary's top
    allocators by bytes and by count and its leaks, the first FUNCTIONS_TOP of each."""
    summary = capture.summary or {}
    flame = _read_json(capture, "flame")
    return {
        "flame": flame if isinstance(flame, dict) else None,
        "top_by_bytes": list(summary.get("top_by_bytes") or [])[:FUNCTIONS_TOP],
        "top_by_count": list(summary.get("top_by_count") or [])[:FUNCTIONS_TOP],
        "leaks": list(summary.get("leaks") or [])[:FUNCTIONS_TOP],
        "heap": summary,
    }


def threads_context(capture: ProfileCapture) -> dict[str, Any]:
    return {"threads": (capture.summary or {}).get("threads") or []}


# The CPU page takes the request's "show all" too (detail below).
KIND_CONTEXT = {
    CaptureKind.MEMORY: memory_context,
    CaptureKind.THREADS: threads_context,
    CaptureKind.TRACE: trace_context,
    CaptureKind.ALLOCATIONS: allocations_context,
}


# -- diff of two CPU captures ---------------------------------------------------------------


def diff_choices() -> list[ProfileCapture]:
    """The recent finished CPU captures the diff page offers."""
    return list(
        ProfileCapture.objects.filter(kind=CaptureKind.CPU, status=CaptureStatus.DONE)
        .select_related("target")
        .only("id", "pid", "target", "target__name", "created_at", "run_id", "summary")
        .order_by("-created_at", "-id")[:DIFF_CHOICES]
    )


def choice_label(capture: ProfileCapture) -> str:
    what = capture.target.name if capture.target else f"PID {capture.pid}"
    run = f", run #{capture.run_id}" if capture.run_id else ""
    return f"#{capture.pk} {what}, {capture.created_at:%Y-%m-%d %H:%M}{run}"


def _samples_of(capture: ProfileCapture) -> int:
    return int((capture.summary or {}).get("samples") or 0)


def diff_context(a: ProfileCapture, b: ProfileCapture) -> dict[str, Any]:
    """The rows of the diff of a and b, in two queries (their runs' requests, their stats)."""
    run_ids = [run_id for run_id in (a.run_id, b.run_id) if run_id]
    requests = dict(LoadTestRun.objects.filter(pk__in=run_ids).values_list("pk", "requests"))
    stats: dict[int, list[dict[str, Any]]] = {a.pk: [], b.pk: []}
    for stat in FunctionStat.objects.filter(capture_id__in=[a.pk, b.pk]).values(
        "capture_id", "function", "file", "line", "self_samples", "total_samples"
    ):
        stats[stat.pop("capture_id")].append(stat)
    a_requests, b_requests = requests.get(a.run_id), requests.get(b.run_id)
    rows = diff.diff(
        stats[a.pk],
        stats[b.pk],
        _samples_of(a),
        _samples_of(b),
        a_requests=a_requests,
        b_requests=b_requests,
        limit=DIFF_ROWS,
    )
    return {
        "rows": rows,
        "per_request": bool(a_requests and b_requests),
        "a_requests": a_requests,
        "b_requests": b_requests,
        "a_samples": _samples_of(a),
        "b_samples": _samples_of(b),
    }
