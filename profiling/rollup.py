"""Downsampling of the monitor's readings: raw readings into 1-minute buckets, those into
hourly ones. Pure: plain dicts in and out.

A bucket holds the mean and the maximum of RSS, USS and CPU % (a mean of means weighted by
how many readings each stands for), the most threads and open files seen, and the last GC
figures (the agent's are cumulative). A bucket never mixes two processes: readings of the
old and the new PID around a restart make two buckets with the same start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

MINUTE_S = 60
HOUR_S = 3600


def bucket_start(at: datetime, width_s: int) -> datetime:
    """The start of the `width_s` bucket holding `at` (aligned on the epoch, in UTC)."""
    seconds = int(at.timestamp()) // width_s * width_s
    return datetime.fromtimestamp(seconds, tz=UTC)


def buckets(rows: Iterable[dict[str, Any]], width_s: int) -> list[dict[str, Any]]:
    """Rows (`at`, `pid`, `samples`, the figures and their maxima) grouped into buckets of
    `width_s` seconds by start and PID, in time order."""
    grouped: dict[tuple[datetime, int], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["at"]):
        grouped.setdefault((bucket_start(row["at"], width_s), row["pid"]), []).append(row)
    return [_bucket(start, pid, members) for (start, pid), members in grouped.items()]


def _bucket(start: datetime, pid: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    weights = [row.get("samples") or 1 for row in rows]
    return {
        "at": start,
        "pid": pid,
        "samples": sum(weights),
        "rss_bytes": round(_mean([row["rss_bytes"] for row in rows], weights)),
        "rss_max_bytes": max(row["rss_max_bytes"] for row in rows),
        "uss_bytes": _rounded(_mean([row["uss_bytes"] for row in rows], weights)),
        "uss_max_bytes": _max([row["uss_max_bytes"] for row in rows]),
        "cpu_pct": round(_mean([row["cpu_pct"] for row in rows], weights), 2),
        "cpu_max_pct": max(row["cpu_max_pct"] for row in rows),
        "threads": max(row["threads"] for row in rows),
        "open_files": _max([row["open_files"] for row in rows]),
        "gc": next((row["gc"] for row in reversed(rows) if row.get("gc")), None),
    }


def _mean(values: list[float | None], weights: list[int]) -> float | None:
    known = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
    if not known:
        return None
    return sum(v * w for v, w in known) / sum(w for _, w in known)


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def _max(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None
