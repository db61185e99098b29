"""Rows for the query optimizer's pages, built with plain objects.create: a target whose DSN
holds a password the pages must never print, a finished run, and three shapes seen from
the app side, from the target, or both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestRun, RunStatus
from queryopt.models import (
    NPlusOne,
    QueryShape,
    QueryStatWindow,
    QueryTarget,
    SlowQuery,
    SnapshotReason,
    StatementDelta,
    StatementSnapshot,
)
from stats.histogram import histogram_of

PASSWORD = "s3cret-pw"
# Port 1 refuses at once: pages that ask the target show the (redacted) failure quickly.
DSN = f"postgresql://shop:{PASSWORD}@127.0.0.1:1/shop"


@dataclass
class Seen:
    target: QueryTarget
    run: LoadTestRun
    by_site: QueryShape  # app side (two origins) and target
    batches: QueryShape  # app side only, an N+1
    report: QueryShape  # target only
    start: datetime


def make_target(name: str = "shop", dsn: str = DSN) -> QueryTarget:
    return QueryTarget.objects.create(name=name, dsn=dsn)


def make_run(started: datetime, seconds: int = 60, **fields: Any) -> LoadTestRun:
    return LoadTestRun.objects.create(
        name="by-site load",
        config={"load_model": "closed", "duration_s": seconds},
        status=fields.pop("status", RunStatus.PASSED),
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        planned_duration_s=seconds,
        **fields,
    )


def shape(target: QueryTarget, digest: str, text: str) -> QueryShape:
    return QueryShape.objects.create(target=target, fingerprint=digest, query_text=text)


def window(
    fp: QueryShape,
    at: datetime,
    latencies_us: list[int],
    origin: str = "GET emissions.views.by_site",
    run: LoadTestRun | None = None,
) -> QueryStatWindow:
    histogram = histogram_of(latencies_us)
    return QueryStatWindow.objects.create(
        shape=fp,
        window_start=at,
        window_end=at + timedelta(seconds=1),
        origin=origin,
        run=run,
        calls=len(latencies_us),
        total_ms=sum(latencies_us) / 1000,
        min_ms=min(latencies_us) / 1000,
        max_ms=max(latencies_us) / 1000,
        p95_ms=histogram.value_at_percentile(95) / 1000,
        p99_ms=histogram.value_at_percentile(99) / 1000,
        histogram=histogram.encode(),
    )


def snapshot(
    target: QueryTarget, at: datetime, reason: str, run: LoadTestRun | None = None
) -> StatementSnapshot:
    return StatementSnapshot.objects.create(target=target, taken_at=at, reason=reason, run=run)


def delta(snap: StatementSnapshot, fp: QueryShape, calls: int, total_ms: float) -> None:
    StatementDelta.objects.create(
        snapshot=snap,
        shape=fp,
        calls=calls,
        total_exec_time_ms=total_ms,
        mean_exec_time_ms=total_ms / calls,
        min_exec_time_ms=0.1,
        max_exec_time_ms=total_ms,
        stddev_exec_time_ms=0.0,
        rows=calls,
        shared_blks_hit=0,
        shared_blks_read=0,
        temp_blks_read=0,
        temp_blks_written=0,
    )


@pytest.fixture
def seen(db: Any) -> Seen:
    """by_site: 2 windows in the run (p95 from 100 values), 1 older one from another origin,
    and 40 target calls in the run's window. batches: 30 fast app calls, an N+1 and a slow
    execution. report: 5 target calls before the run only (run_start's deltas)."""
    target = make_target()
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    run = make_run(start)
    by_site = shape(target, "f-by-site", "SELECT * FROM rows WHERE site_id = $1")
    batches = shape(target, "f-batches", "SELECT * FROM batch_rows WHERE batch_id = $1")
    report = shape(target, "f-report", "SELECT count(*) FROM report")
    # 95 values of 1 ms and 5 of 200 ms: p95 of the union is 1 ms, each window's differ.
    window(by_site, start + timedelta(seconds=5), [1_000] * 50, run=run)
    window(by_site, start + timedelta(seconds=6), [1_000] * 45 + [200_000] * 5, run=run)
    window(by_site, start - timedelta(days=3), [50_000] * 2, origin="task emissions.recompute")
    for second in range(3):
        window(
            batches, start + timedelta(seconds=10 + second), [300] * 10,
            origin="GET emissions.views.batches", run=run,
        )  # fmt: skip
    before = snapshot(target, start - timedelta(minutes=5), SnapshotReason.SCHEDULED)
    delta(before, report, calls=3, total_ms=30.0)
    begin = snapshot(target, start, SnapshotReason.RUN_START, run)
    delta(begin, report, calls=5, total_ms=5000.0)
    end = snapshot(target, start + timedelta(seconds=60), SnapshotReason.RUN_END, run)
    delta(end, by_site, calls=40, total_ms=400.0)
    NPlusOne.objects.create(
        shape=batches,
        origin="GET emissions.views.batches",
        occurrences=3,
        last_count=10,
        max_count=10,
        total_ms=9.0,
        last_run=run,
        first_seen_at=start,
        last_seen_at=start + timedelta(seconds=12),
        code_frame="emissions/views.py:88 batches",
    )
    SlowQuery.objects.create(
        shape=by_site,
        captured_at=start + timedelta(seconds=6),
        duration_ms=200.0,
        sql="SELECT * FROM rows WHERE site_id = %s",
        origin="GET emissions.views.by_site",
        run=run,
        code_frame="emissions/views.py:120 by_site",
    )
    return Seen(target, run, by_site, batches, report, start)
