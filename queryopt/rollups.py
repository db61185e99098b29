"""Daily roll-ups of the app-side statistics, so that the Queries page reads days, not seconds.

The capture writes one QueryStatWindow per shape, origin and process about every second:
a week of a busy app is a million rows. `roll_up` (beat, every minute, queue `default`) sums
them per day (in TIME_ZONE) into QueryStatRollup rows (calls, errors, total time, the worst
window's p95 as a ranking bound, the merged histogram) at three grains: per shape, per
shape and origin, per shape, origin and run. The page reads the coarsest grain its
filters allow, so an unfiltered list's p95 costs one histogram per shape and day.
Merging histograms loses nothing, so the figures are exact. StatRollupState.rolled_up_to is
the id of the last window summed; the page reads the roll-ups and only the windows after it
(the tail), so its figures are the raw rows' whether or not the task has caught up, and it
reads a bounded number of rows when it has.

Windows are taken in id order and only once they are SETTLE_S old, stopping at the first
younger one: a flush's transaction commits within moments of writing its window_end, so no
window can appear later below the mark. Days are those of TIME_ZONE, so the page's day
filters match them exactly; a changed TIME_ZONE rebuilds the roll-ups from the windows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from queryopt.models import QueryStatRollup, QueryStatWindow, RollupGrain, StatRollupState
from stats.sums import HistogramSum

SETTLE_S = 120
BATCH = 20_000
WINDOW_FIELDS = (
    "pk",
    "shape_id",
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

# (shape, grain, origin, run, day)
Key = tuple[int, str, str, int | None, date]


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
        zone = timezone.get_current_timezone_name()
        if state.time_zone != zone:  # days of another zone: start again from the windows
            QueryStatRollup.objects.all().delete()
            state.rolled_up_to, state.time_zone = 0, zone
            state.save(update_fields=["rolled_up_to", "time_zone", "updated_at"])
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
        day = timezone.localdate(row[4])
        groups.setdefault((row[1], RollupGrain.RUN, row[2], row[3], day), []).append(row)
        groups.setdefault((row[1], RollupGrain.ORIGIN, row[2], None, day), []).append(row)
        groups.setdefault((row[1], RollupGrain.FINGERPRINT, "", None, day), []).append(row)
    existing = {
        (r.shape_id, r.grain, r.origin, r.run_id, r.day): r
        for r in QueryStatRollup.objects.filter(
            shape_id__in={key[0] for key in groups}, day__in={key[4] for key in groups}
        )
    }
    changed, created = [], []
    for key, rows in groups.items():
        rollup = existing.get(key)
        if rollup is None:
            rollup = QueryStatRollup(
                shape_id=key[0], grain=key[1], origin=key[2], run_id=key[3], day=key[4]
            )
            created.append(rollup)
        else:
            changed.append(rollup)
        rollup.windows += len(rows)
        rollup.calls += sum(row[6] for row in rows)
        rollup.errors += sum(row[7] for row in rows)
        rollup.total_ms += sum(row[8] for row in rows)
        rollup.p95_bound_ms = max([rollup.p95_bound_ms, *(row[9] for row in rows)])
        merged = HistogramSum().add_all([rollup.histogram, *(row[10] for row in rows)])
        rollup.histogram = merged.encoded()
    # Replaced rather than updated: bulk_update's CASE per row and field parses slowly for
    # hundreds of rows, and nothing points at a roll-up row.
    QueryStatRollup.objects.filter(pk__in=[rollup.pk for rollup in changed]).delete()
    QueryStatRollup.objects.bulk_create([*changed, *created], batch_size=1000)


# -- read side ------------------------------------------------------------------------------


def grouped(rollups: QuerySet[QueryStatRollup]) -> QuerySet:
    """Calls, total and the p95 bound per shape and origin, like the windows' grouping."""
    return (
        rollups.values("shape_id", "origin")
        .annotate(calls=Sum("calls"), total=Sum("total_ms"), p95=Max("p95_bound_ms"))
        .order_by()
    )
