"""Hourly roll-ups of the app-side statistics, so that the Queries page reads hours, not seconds.

The capture writes one QueryStatWindow per fingerprint, origin and process about every second:
a week of a busy app is millions of rows. `roll_up` (beat, every minute, queue `default`) sums
them per (fingerprint, origin, run, hour) into QueryStatRollup rows: calls, errors, total time,
the worst window's p95 (a bound, for ranking) and the merged histogram, exact because merging
histograms loses nothing. StatRollupState.rolled_up_to is the id of the last window summed; the
page reads the roll-ups and only the windows after it (`tail`), so its figures are the raw
rows' whether or not the task has caught up, and it reads a bounded number of rows when it has.

Windows are taken in id order and only once they are SETTLE_S old, stopping at the first
younger one: a flush's transaction commits within moments of writing its window_end, so no
window can appear later below the mark. Roll-ups are hours in UTC: a day filter is exact in
every time zone whose offset is whole hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from loadtests.engine.histograms import Histogram, merge_all
from queryopt.models import QueryStatRollup, QueryStatWindow, StatRollupState

SETTLE_S = 120
BATCH = 20_000
WINDOW_FIELDS = (
    "pk",
    "fingerprint_id",
    "origin",
    "run_id",
    "window_start",
    "window_end",
    "calls",
    "errors",
    "total_ms",
    "p95_ms",
    "histogram",
)

Key = tuple[int, str, int | None, datetime]


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rolled_up_to() -> int:
    """The id of the last window summed into the roll-ups (0: none)."""
    mark = StatRollupState.objects.values_list("rolled_up_to", flat=True).first()
    return int(mark or 0)


def roll_up(now: datetime | None = None, batch: int = BATCH) -> int:
    """Sum the settled windows after the mark into their hours' roll-ups, `batch` at most;
    the number of windows summed. One writer at a time (the state row is locked)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=SETTLE_S)
    with transaction.atomic():
        state, _ = StatRollupState.objects.select_for_update().get_or_create(pk=1)
        rows = QueryStatWindow.objects.filter(pk__gt=state.rolled_up_to).order_by("pk")
        taken = []
        for row in rows.values_list(*WINDOW_FIELDS)[:batch]:
            if row[5] >= cutoff:
                break
            taken.append(row)
        if not taken:
            return 0
        _add(taken)
        state.rolled_up_to = taken[-1][0]
        state.save(update_fields=["rolled_up_to", "updated_at"])
    return len(taken)


def roll_up_all(now: datetime | None = None, batch: int = BATCH) -> int:
    """roll_up until nothing settled is left; the number of windows summed."""
    total = 0
    while done := roll_up(now, batch):
        total += done
        if done < batch:
            break
    return total


def _add(windows: list[tuple[Any, ...]]) -> None:
    groups: dict[Key, list[tuple[Any, ...]]] = {}
    for row in windows:
        groups.setdefault((row[1], row[2], row[3], hour_of(row[4])), []).append(row)
    existing = {
        (r.fingerprint_id, r.origin, r.run_id, r.hour_start): r
        for r in QueryStatRollup.objects.filter(
            fingerprint_id__in={key[0] for key in groups},
            hour_start__in={key[3] for key in groups},
        )
    }
    changed, created = [], []
    for key, rows in groups.items():
        rollup = existing.get(key)
        if rollup is None:
            rollup = QueryStatRollup(
                fingerprint_id=key[0], origin=key[1], run_id=key[2], hour_start=key[3]
            )
            created.append(rollup)
        else:
            changed.append(rollup)
        rollup.windows += len(rows)
        rollup.calls += sum(row[6] for row in rows)
        rollup.errors += sum(row[7] for row in rows)
        rollup.total_ms += sum(row[8] for row in rows)
        rollup.p95_bound_ms = max([rollup.p95_bound_ms, *(row[9] for row in rows)])
        rollup.histogram = merged([rollup.histogram, *(row[10] for row in rows)])
    fields = ["windows", "calls", "errors", "total_ms", "p95_bound_ms", "histogram"]
    QueryStatRollup.objects.bulk_update(changed, fields, batch_size=1000)
    QueryStatRollup.objects.bulk_create(created, batch_size=1000)


def merged(encoded: Iterable[str]) -> str:
    """The merge of encoded histograms, encoded ("" when there is none)."""
    histograms = [Histogram.decode(text) for text in encoded if text]
    return merge_all(histograms).encode() if histograms else ""


# -- read side ------------------------------------------------------------------------------


def grouped(rollups: QuerySet[QueryStatRollup]) -> QuerySet:
    """Calls, total and the p95 bound per fingerprint and origin, like the windows' grouping."""
    return (
        rollups.values("fingerprint_id", "origin")
        .annotate(calls=Sum("calls"), total=Sum("total_ms"), p95=Max("p95_bound_ms"))
        .order_by()
    )
