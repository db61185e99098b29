"""The queries list: one row per shape from both sources, sorted, filtered, with N+1
groups and slow queries, in a fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from queryopt import rollups
from queryopt.models import QueryStatWindow
from tests.queryopt.pages.conftest import Seen, window

pytestmark = pytest.mark.django_db

# Session and user lookups made by the middleware on every logged-in request.
AUTH_QUERIES = 2


def shown_ids(response: Any) -> list[int]:
    table = response.content.decode().split('id="query-rows"', 1)[1].split("</table>", 1)[0]
    return [int(pk) for pk in re.findall(r'data-shape-id="(\d+)"', table)]


def test_it_sends_a_stranger_to_the_login_page(client: Any) -> None:
    response = client.get("/queries/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_lists_each_fingerprint_once_from_both_sources(viewer_client: Any, seen: Seen) -> None:
    response = viewer_client.get("/queries/")
    assert response.status_code == 200
    rows = {row.shape_id: row for row in response.context["rows"]}
    assert set(rows) == {seen.by_site.pk, seen.batches.pk, seen.report.pk}
    by_site = rows[seen.by_site.pk]
    assert by_site.source == "app + target"
    assert by_site.calls == 102  # the app's count, not added to the target's 40
    assert by_site.origin_list == ["GET emissions.views.by_site", "task emissions.recompute"]
    # 95 values of 1 ms, 2 of 50 ms and 5 of 200 ms: the merged 95th percentile is 50 ms.
    assert by_site.p95_ms == pytest.approx(50.0, rel=0.01)
    report = rows[seen.report.pk]
    assert (report.source, report.calls, report.p95_ms) == ("target", 8, None)
    assert report.total_ms == pytest.approx(5030.0)
    body = response.content.decode()
    assert "SELECT count(*) FROM report" in body and f'href="/queries/{seen.report.pk}/"' in body


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("total", ["report", "by_site", "batches"]),
        ("calls", ["by_site", "batches", "report"]),
        ("mean", ["report", "by_site", "batches"]),
        ("p95", ["by_site", "batches", "report"]),
    ],
)
def test_it_sorts_by_the_chosen_column(
    viewer_client: Any, seen: Seen, sort: str, order: list[str]
) -> None:
    response = viewer_client.get(f"/queries/?sort={sort}")
    assert shown_ids(response) == [getattr(seen, name).pk for name in order]


def test_it_narrows_to_a_run_with_the_target_deltas_of_its_window(
    viewer_client: Any, seen: Seen
) -> None:
    response = viewer_client.get(f"/queries/?run={seen.run.pk}")
    rows = {row.shape_id: row for row in response.context["rows"]}
    # The report's deltas are those of the run_start snapshot: before the run, not in it.
    assert set(rows) == {seen.by_site.pk, seen.batches.pk}
    assert rows[seen.by_site.pk].calls == 100 and rows[seen.by_site.pk].target_calls == 40
    assert rows[seen.by_site.pk].p95_ms == pytest.approx(1.0, rel=0.01)
    assert [group.pk for group in response.context["n_plus_ones"]] == [
        seen.batches.n_plus_ones.get().pk
    ]


def test_it_narrows_to_an_origin_target_and_dates(viewer_client: Any, seen: Seen) -> None:
    response = viewer_client.get("/queries/?origin=GET+emissions.views.batches")
    assert shown_ids(response) == [seen.batches.pk]
    assert response.context["slow_queries"] == []
    since = (seen.start - timedelta(days=1)).date().isoformat()
    response = viewer_client.get(f"/queries/?since={since}&sort=calls")
    rows = {row.shape_id: row for row in response.context["rows"]}
    assert rows[seen.by_site.pk].calls == 100  # the window of three days ago is left out
    other = seen.target.__class__.objects.create(name="other", dsn="postgresql://o@h/o")
    assert shown_ids(viewer_client.get(f"/queries/?target={other.pk}")) == []
    assert len(shown_ids(viewer_client.get(f"/queries/?target={seen.target.pk}"))) == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sort=slowest", "sort: Sort by one of total, mean, calls, p95."),
        ("since=2026-13-45", "since: Enter a date as YYYY-MM-DD."),
        ("run=abc", "run: Enter a whole number."),
        ("run=987654", "run: there is no load-test run #987654."),
        ("target=987654", "target: there is no query target #987654."),
        ("since=2026-05-02&until=2026-05-01", "until: Must be on or after the &#x27;since&#x27;"),
    ],
)
def test_a_bad_filter_gets_a_message_naming_the_field(
    viewer_client: Any, seen: Seen, query: str, message: str
) -> None:
    response = viewer_client.get(f"/queries/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert len(shown_ids(response)) >= 1  # the other filters still apply; nothing is lost


def test_it_shows_n_plus_one_groups_and_slow_queries(viewer_client: Any, seen: Seen) -> None:
    body = viewer_client.get("/queries/").content.decode()
    n_plus_one = body.split('id="n-plus-one"', 1)[1].split("</section>", 1)[0]
    assert "GET emissions.views.batches" in n_plus_one
    assert "emissions/views.py:88 batches" in n_plus_one
    slow = body.split('id="slow-queries"', 1)[1].split("</section>", 1)[0]
    assert "emissions/views.py:120 by_site" in slow and f"#{seen.run.pk}" in slow


def test_it_reads_the_list_in_a_fixed_number_of_queries(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any
) -> None:
    # targets, roll-up mark, roll-up groups, later windows' groups, target groups,
    # shapes, roll-ups' and windows' histograms, N+1 groups, slow
    with django_assert_num_queries(AUTH_QUERIES + 10):
        admin_client.get("/queries/?sort=p95")
    for second in range(50):
        window(seen.batches, seen.start + timedelta(minutes=5, seconds=second), [400] * 3)
    assert QueryStatWindow.objects.count() > 50
    with django_assert_num_queries(AUTH_QUERIES + 10):
        admin_client.get("/queries/")
    rollups.roll_up_all()
    with django_assert_num_queries(AUTH_QUERIES + 10):
        admin_client.get("/queries/")
    # and the run asked for
    with django_assert_num_queries(AUTH_QUERIES + 11):
        admin_client.get(f"/queries/?run={seen.run.pk}")


def test_it_shows_only_the_first_rows_of_the_order(seen: Seen) -> None:
    from queryopt.pages import top_rows

    rows = top_rows({}, "calls", limit=2)
    assert [row.shape_id for row in rows] == [seen.by_site.pk, seen.batches.pk]
