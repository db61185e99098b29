"""The Queries page reads hourly roll-ups of the app-side windows and only the windows after
them: the same totals, origins and merged p95 as the raw windows, whatever has been rolled up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queryopt import rollups, tasks
from queryopt.models import QueryStatRollup, QueryStatWindow, RollupGrain, StatRollupState
from queryopt.pages import query_rows, top_rows
from stats.sums import HistogramSum
from tests.queryopt.pages.conftest import Seen, make_run, shape, window

pytestmark = pytest.mark.django_db


def many_windows(seen: Seen) -> None:
    """Windows over three hours, two origins, with and without a run, on top of `seen`'s."""
    other = shape(seen.target, "f-other", "SELECT 1 FROM other WHERE id = $1")
    late_run = make_run(seen.start + timedelta(hours=1))
    for minute in range(0, 180, 7):
        at = seen.start - timedelta(hours=1) + timedelta(minutes=minute, seconds=minute % 60)
        run = late_run if 60 <= minute < 120 else None
        origin = "GET emissions.views.by_site" if minute % 2 else "task emissions.recompute"
        window(seen.by_site, at, [1_000 + 300 * minute] * (1 + minute % 5), origin, run)
        window(other, at, [200 + minute, 90_000], origin, run)


def figures(filters: dict[str, Any], mark: int) -> dict[int, tuple[Any, ...]]:
    return {
        pk: (row.app_calls, round(row.app_total_ms, 6), row.app_p95_bound_ms, row.origin_list)
        for pk, row in query_rows(filters, mark).items()
    }


def shown(filters: dict[str, Any]) -> list[tuple[int, int, float | None]]:
    return [(row.shape_id, row.calls, row.p95_ms) for row in top_rows(filters, "p95")]


def filter_sets(seen: Seen) -> list[dict[str, Any]]:
    today = timezone.localdate(seen.start)
    return [
        {},
        {"origin": "task emissions.recompute"},
        {"run": seen.run},
        {"target": seen.target.pk},
        {"since": today, "until": today},
        {"until": today - timedelta(days=1)},
    ]


def test_the_rollups_give_the_same_totals_and_p95_as_the_raw_windows(seen: Seen) -> None:
    many_windows(seen)
    raw = [(figures(f, 0), shown(f)) for f in filter_sets(seen)]
    assert not QueryStatRollup.objects.exists()
    # Part rolled up (the task behind), then all of it: the page's figures never change.
    assert rollups.roll_up(batch=20) == 20
    assert [(figures(f, rollups.rolled_up_to()), shown(f)) for f in filter_sets(seen)] == raw
    assert tasks.roll_up_stat_windows() == QueryStatWindow.objects.count() - 20
    assert rollups.rolled_up_to() == QueryStatWindow.objects.order_by("-pk").first().pk
    assert [(figures(f, rollups.rolled_up_to()), shown(f)) for f in filter_sets(seen)] == raw
    # Both kinds of roll-up hold the windows' totals and histograms.
    windows = list(QueryStatWindow.objects.all())
    for grain in RollupGrain.values:
        rolled = list(QueryStatRollup.objects.filter(grain=grain))
        assert len(rolled) < len(windows) / 2
        assert sum(r.calls for r in rolled) == sum(w.calls for w in windows)
        assert sum(r.windows for r in rolled) == len(windows)
        assert sum(r.total_ms for r in rolled) == pytest.approx(sum(w.total_ms for w in windows))
        merged = HistogramSum().add_all(r.histogram for r in rolled).histogram()
        assert merged == HistogramSum().add_all(w.histogram for w in windows).histogram()


def test_another_time_zone_rebuilds_the_days(seen: Seen, settings: Any) -> None:
    rollups.roll_up_all()
    zone = "Pacific/Kiritimati"  # UTC+14
    settings.TIME_ZONE = zone
    with timezone.override(zone):
        rollups.roll_up_all()
        expected = {
            timezone.localdate(start)
            for start in QueryStatWindow.objects.values_list("window_start", flat=True)
        }
    assert StatRollupState.objects.get().time_zone == zone
    rolled = QueryStatRollup.objects.filter(grain=RollupGrain.FINGERPRINT)
    assert set(rolled.values_list("day", flat=True)) == expected
    assert sum(r.windows for r in rolled) == QueryStatWindow.objects.count()


def test_it_rolls_up_only_settled_windows_in_id_order(seen: Seen) -> None:
    fresh = window(seen.by_site, timezone.now(), [500])
    older_after_it = window(seen.by_site, seen.start, [700])
    rolled = rollups.roll_up()
    assert rollups.rolled_up_to() == fresh.pk - 1  # stops at the first unsettled one
    assert rolled == QueryStatWindow.objects.filter(pk__lt=fresh.pk).count()
    assert rollups.roll_up(now=timezone.now() + timedelta(minutes=5)) == 2
    assert rollups.rolled_up_to() == older_after_it.pk


def test_the_page_reads_no_rolled_up_window(admin_client: Any, seen: Seen) -> None:
    many_windows(seen)
    rollups.roll_up_all()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/queries/?sort=p95")
    assert response.status_code == 200
    on_windows = [q["sql"] for q in queries if '"queryopt_querystatwindow"' in q["sql"]]
    assert on_windows and all('"queryopt_querystatwindow"."id" >' in sql for sql in on_windows)
