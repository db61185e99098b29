"""Snapshots of a target's pg_stat_statements, stored as deltas against the previous one.

The view is never reset (other tools may read it): each snapshot keeps the cumulative counters
per (userid, dbid, queryid), and the next one subtracts them. Counters that went down (a
pg_stat_statements_reset(), an entry evicted and seen again) mean the entry started over, so
its new values are the delta.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from psycopg.rows import dict_row

from queryopt import indexusage, targets
from queryopt.dsn import redact
from queryopt.fingerprints import normalize_query
from queryopt.models import (
    QueryShape,
    QueryTarget,
    SnapshotReason,
    StatementDelta,
    StatementSnapshot,
)

log = logging.getLogger(__name__)

# Cumulative counters, in this order, in StatementSnapshot.counters.
COUNTERS = (
    "calls",
    "total_exec_time",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "temp_blks_read",
    "temp_blks_written",
)
# The counters are a fixed tuple of column names, never input.
STATEMENTS_SQL = f"""
SELECT userid, dbid, queryid, query, {", ".join(COUNTERS)},
       min_exec_time, max_exec_time, stddev_exec_time,
       to_jsonb(s) ->> 'toplevel' AS toplevel
FROM pg_stat_statements s
WHERE queryid IS NOT NULL
  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""  # noqa: S608


def take_snapshot(
    target: QueryTarget, reason: str = SnapshotReason.MANUAL, run_id: int | None = None
) -> StatementSnapshot:
    """Snapshot `target` now; raises TargetError (stored in last_error) when it cannot."""
    try:
        rows, stats_reset = _read_statements(target.dsn)
    except targets.TargetError as exc:
        _record_error(target, str(exc))
        raise
    with transaction.atomic():
        snapshot = _store(target, rows, stats_reset, reason, run_id)
    # After the deltas are stored: they are what an applied index's before/after is made of.
    indexusage.track_applied(target, snapshot)
    return snapshot


def _read_statements(dsn: str) -> tuple[list[dict[str, Any]], datetime | None]:
    with targets.connect(dsn) as conn:
        problem = targets.ensure_extension(conn, "pg_stat_statements")
        if problem:
            raise targets.TargetError(problem)
        try:
            cursor = conn.cursor(row_factory=dict_row)
            rows = cursor.execute(STATEMENTS_SQL).fetchall()
            reset = conn.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()
        except Exception as exc:  # noqa: BLE001 - one redacted line for every cause
            raise targets.TargetError(
                targets.describe_error(exc, dsn, "cannot read pg_stat_statements")
            ) from None
    return rows, reset[0] if reset else None


def _record_error(target: QueryTarget, message: str) -> None:
    message = redact(message, target.dsn)
    log.warning("queryopt target %s: %s", target.name, message)
    QueryTarget.objects.filter(pk=target.pk).update(last_error=message[:2000])
    target.last_error = message[:2000]


def _store(
    target: QueryTarget,
    rows: list[dict[str, Any]],
    stats_reset: datetime | None,
    reason: str,
    run_id: int | None,
) -> StatementSnapshot:
    now = timezone.now()
    previous = StatementSnapshot.objects.filter(target=target).order_by("-taken_at", "-pk").first()
    counters = {_key(row): [row[name] for name in COUNTERS] for row in rows}
    snapshot = StatementSnapshot.objects.create(
        target=target,
        taken_at=now,
        run_id=run_id,
        reason=reason,
        stats_reset=stats_reset,
        counters=counters,
    )
    if previous is not None:
        # A reset of the whole view since the last snapshot: everything started over.
        before = {} if stats_reset != previous.stats_reset else previous.counters
        _store_deltas(snapshot, rows, before, now)
    QueryTarget.objects.filter(pk=target.pk).update(last_snapshot_at=now, last_error="")
    target.last_snapshot_at, target.last_error = now, ""
    return snapshot


def _key(row: dict[str, Any]) -> str:
    # With pg_stat_statements.track = all (PostgreSQL 14+), a queryid has a row as a top-level
    # statement and one nested in functions: `toplevel` tells them apart (null before 14).
    key = f"{row['userid']}:{row['dbid']}:{row['queryid']}"
    return key if row.get("toplevel") in (None, "true") else f"{key}:nested"


def window_counts(now: list[float], before: list[float] | None) -> list[float]:
    """The counters of one entry over the window; its new values when it started over."""
    if before is None or now[0] < before[0] or any(n < b for n, b in zip(now, before, strict=True)):
        return list(now)
    return [n - b for n, b in zip(now, before, strict=True)]


def _store_deltas(
    snapshot: StatementSnapshot,
    rows: Iterable[dict[str, Any]],
    before: dict[str, list[float]],
    now: datetime,
) -> None:
    # One query may have a row per user, and several queryids (IN lists of other lengths): add
    # them up per fingerprint, the key the app-side capture files the same query under.
    windows: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts = window_counts([row[name] for name in COUNTERS], before.get(_key(row)))
        if counts[0] <= 0:
            continue
        normalized = normalize_query(row["query"])
        window = windows.setdefault(
            normalized.fingerprint, {"query": normalized.text, "rows": [], "queryid": None}
        )
        window["rows"].append((counts, row))
        window["queryid"] = row["queryid"]
    for fingerprint, window in windows.items():
        shape = _shape(snapshot.target, fingerprint, window, now)
        StatementDelta.objects.create(
            snapshot=snapshot, shape=shape, **_delta_fields(window["rows"])
        )


def _shape(
    target: QueryTarget, fingerprint: str, window: dict[str, Any], now: datetime
) -> QueryShape:
    shape, created = QueryShape.objects.get_or_create(
        target=target,
        fingerprint=fingerprint,
        defaults={"query_text": window["query"], "queryid": window["queryid"]},
    )
    if not created:
        QueryShape.objects.filter(pk=shape.pk).update(
            # The text too: a better normaliser must not leave old rows planning old text.
            last_seen_at=now,
            queryid=window["queryid"],
            query_text=window["query"],
        )
    return shape


def _delta_fields(parts: list[tuple[list[float], dict[str, Any]]]) -> dict[str, Any]:
    totals = [sum(counts[i] for counts, _ in parts) for i in range(len(COUNTERS))]
    sums = dict(zip(COUNTERS, totals, strict=True))
    busiest = max(parts, key=lambda part: part[0][0])[1]
    return {
        "calls": int(sums["calls"]),
        "total_exec_time_ms": float(sums["total_exec_time"]),
        "mean_exec_time_ms": float(sums["total_exec_time"]) / sums["calls"],
        "min_exec_time_ms": min(float(row["min_exec_time"]) for _, row in parts),
        "max_exec_time_ms": max(float(row["max_exec_time"]) for _, row in parts),
        "stddev_exec_time_ms": float(busiest["stddev_exec_time"]),
        "rows": int(sums["rows"]),
        "shared_blks_hit": int(sums["shared_blks_hit"]),
        "shared_blks_read": int(sums["shared_blks_read"]),
        "temp_blks_read": int(sums["temp_blks_read"]),
        "temp_blks_written": int(sums["temp_blks_written"]),
    }


def due_targets(now: datetime) -> list[QueryTarget]:
    """Enabled targets whose polling interval has passed since their last snapshot."""
    due = []
    for target in QueryTarget.objects.filter(enabled=True):
        last = target.last_snapshot_at
        if last is None or (now - last).total_seconds() >= target.polling_interval_s:
            due.append(target)
    return due


def snapshot_enabled_targets(reason: str, run_id: int | None) -> list[str]:
    """Snapshot every enabled target (a run's start or end); the problems, one per target."""
    problems = []
    for target in QueryTarget.objects.filter(enabled=True):
        try:
            take_snapshot(target, reason, run_id)
        except targets.TargetError as exc:
            problems.append(f"{target.name}: {exc}")
    return problems
