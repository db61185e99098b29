"""Retention: what is older than the RETENTION_* settings allow is deleted, kind by kind.

Kinds and what goes: a finished run's per-second intervals (the run and its summary stay),
profile captures with their artefact files, the app-side query windows already summed into the
hourly roll-ups (the Queries page reads those), and the samples of memory trends (the capture
and its verdict stay). 0 days keeps a kind for ever.

Never pruned: a run marked `keep`, a run that is a baseline (a definition's chosen one, or the
last passing run that stands in when none is chosen), and every capture tied to such a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval, RunStatus
from offgridperf import storage
from profiling.models import CaptureStatus, MemorySample, ProfileCapture
from queryopt.models import QueryStatWindow
from queryopt.rollups import rolled_up_to

# Rows deleted per statement, so that a first prune of a large backlog holds no long lock.
BATCH = 5000


KINDS = storage.RETAINED_KINDS


def cutoff(kind: storage.RetainedKind, now: datetime) -> datetime | None:
    days = getattr(settings, kind.setting)
    return now - timedelta(days=days) if days else None


def protected_runs() -> QuerySet[LoadTestRun]:
    """Runs retention never touches: kept ones and baselines, chosen or standing in."""
    last_passing = (
        LoadTestRun.objects.filter(definition=OuterRef("pk"), status=RunStatus.PASSED)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    chosen = LoadTestDefinition.objects.exclude(baseline_run=None).values("baseline_run")
    standing_in = LoadTestDefinition.objects.annotate(last=Subquery(last_passing)).values("last")
    return LoadTestRun.objects.filter(Q(keep=True) | Q(pk__in=chosen) | Q(pk__in=standing_in))


def run_intervals(before: datetime) -> QuerySet[RunInterval]:
    return RunInterval.objects.filter(run__finished_at__lt=before).exclude(run__in=protected_runs())


def profiles(before: datetime) -> QuerySet[ProfileCapture]:
    ended = (CaptureStatus.DONE, CaptureStatus.ERROR)
    return ProfileCapture.objects.filter(status__in=ended, created_at__lt=before).exclude(
        run__in=protected_runs()
    )


def query_windows(before: datetime) -> QuerySet[QueryStatWindow]:
    # Only windows already in the roll-ups: the ones after the mark are the page's tail.
    return QueryStatWindow.objects.filter(window_end__lt=before, pk__lte=rolled_up_to()).exclude(
        run__in=protected_runs()
    )


def memory_samples(before: datetime) -> QuerySet[MemorySample]:
    return MemorySample.objects.filter(at__lt=before).exclude(capture__run__in=protected_runs())


SELECTORS: dict[str, Callable[[datetime], QuerySet]] = {
    "run_intervals": run_intervals,
    "profiles": profiles,
    "query_windows": query_windows,
    "memory_samples": memory_samples,
}


def prune(*, dry_run: bool = False, now: datetime | None = None) -> dict[str, int]:
    """Delete (or, dry, only count) each kind's rows past its retention: {kind: rows}.

    Profile captures go with their artefact directories; their function statistics and
    memory samples go with them (not counted apart)."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for kind in KINDS:
        before = cutoff(kind, now)
        if before is None:
            counts[kind.name] = 0
            continue
        rows = SELECTORS[kind.name](before)
        if dry_run:
            counts[kind.name] = rows.count()
        elif kind.name == "profiles":
            counts[kind.name] = _delete_captures(rows)
        else:
            counts[kind.name] = _delete_in_batches(rows)
    return counts


def _delete_in_batches(rows: QuerySet) -> int:
    deleted = 0
    while True:
        ids = list(rows.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        rows.model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def _delete_captures(rows: QuerySet[ProfileCapture]) -> int:
    deleted = 0
    while True:
        ids = list(rows.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        # Rows first: a file left behind by a crash is only disk, a row without its file
        # would be a broken page.
        ProfileCapture.objects.filter(pk__in=ids).delete()
        for capture_id in ids:
            shutil.rmtree(artefact_dir(capture_id), ignore_errors=True)
        deleted += len(ids)
        storage.forget_artefact_usage()


def artefact_dir(capture_id: int) -> Path:
    # The layout profiling.services.artefact_dir creates (without creating it).
    return Path(settings.PROFILING_ARTEFACT_DIR) / f"capture-{capture_id}"
