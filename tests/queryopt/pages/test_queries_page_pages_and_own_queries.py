"""The queries list comes in pages of 50, and leaves the tool's own queries (its pages and
tasks) out unless asked for, in the same fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from queryopt import origins
from queryopt.models import NPlusOne, SlowQuery
from queryopt.pages import PAGE_SIZE
from tests.queryopt.pages.conftest import Seen, delta, shape, snapshot, window

pytestmark = pytest.mark.django_db

AUTH_QUERIES = 2
OWN_ORIGIN = "GET loadtests.views.run"


def shown_ids(response: Any) -> list[int]:
    table = response.content.decode().split('id="query-rows"', 1)[1].split("</table>", 1)[0]
    return [int(pk) for pk in re.findall(r'data-shape-id="(\d+)"', table)]


def test_it_tells_the_tools_own_origins_from_the_targets() -> None:
    assert origins.is_own("GET loadtests.views.run")
    assert origins.is_own("POST django.contrib.admin.options.changelist_view")
    assert origins.is_own("queryopt.tasks.roll_up_stat_windows")
    assert not origins.is_own("GET emissions.api_views.batch")
    assert not origins.is_own("task emissions.recompute")
    assert not origins.is_own("GET (no view)")


def test_it_pages_the_list_fifty_rows_at_a_time(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any
) -> None:
    for number in range(PAGE_SIZE):
        fp = shape(seen.target, f"f-many-{number}", f"-- many {number}")
        window(fp, seen.start + timedelta(minutes=1), [500] * (number + 1))
    total = PAGE_SIZE + 3
    first = admin_client.get("/queries/?sort=calls")
    assert len(shown_ids(first)) == PAGE_SIZE
    body = first.content.decode()
    assert f"page 1 of 2 ({total} queries)" in body
    assert 'href="?sort=calls&amp;page=2" rel="next"' in body and 'rel="prev"' not in body
    with django_assert_num_queries(AUTH_QUERIES + 10):
        second = admin_client.get("/queries/?sort=calls&page=2")
    assert len(shown_ids(second)) == total - PAGE_SIZE
    assert not set(shown_ids(first)) & set(shown_ids(second))
    assert 'href="?sort=calls" rel="prev"' in second.content.decode()
    # Past the last page: the last page.
    assert shown_ids(admin_client.get("/queries/?sort=calls&page=9")) == shown_ids(second)
    assert admin_client.get("/queries/?page=0").status_code == 400


def test_it_leaves_the_tools_own_queries_out_unless_asked(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any, settings: Any
) -> None:
    # The page's own queries, captured and flushed about once a second, would be tool
    # queries of their own on ?own=1: only the seeded ones are under test.
    settings.QUERYOPT_CAPTURE = False
    own = shape(seen.target, "f-own", "SELECT * FROM loadtests_loadtestrun WHERE id = $1")
    window(own, seen.start + timedelta(seconds=20), [700] * 4, origin=OWN_ORIGIN)
    # The target's figures of a query only the tool ran are the tool's too.
    delta(snapshot(seen.target, seen.start + timedelta(minutes=2), "scheduled"), own, 9, 9.0)
    # A query both ran: shown without the tool's calls.
    window(seen.batches, seen.start + timedelta(seconds=30), [300] * 1000, origin=OWN_ORIGIN)
    NPlusOne.objects.create(
        shape=own, origin=OWN_ORIGIN, max_count=20, occurrences=1, total_ms=5.0,
        first_seen_at=seen.start, last_seen_at=seen.start,
    )  # fmt: skip
    SlowQuery.objects.create(
        shape=own, origin=OWN_ORIGIN, sql=own.query_text, duration_ms=900.0,
        captured_at=seen.start,
    )  # fmt: skip
    with django_assert_num_queries(AUTH_QUERIES + 10):
        response = admin_client.get("/queries/")
    rows = {row.shape_id: row for row in response.context["rows"]}
    assert set(rows) == {seen.by_site.pk, seen.batches.pk, seen.report.pk}
    assert rows[seen.batches.pk].calls == 30
    assert OWN_ORIGIN not in response.content.decode().split('id="n-plus-one"')[1]
    assert "show them" in response.content.decode()

    with django_assert_num_queries(AUTH_QUERIES + 10):
        response = admin_client.get("/queries/?own=1")
    rows = {row.shape_id: row for row in response.context["rows"]}
    assert set(rows) == {seen.by_site.pk, seen.batches.pk, seen.report.pk, own.pk}
    assert rows[seen.batches.pk].calls == 1030
    assert rows[own.pk].origin_list == [OWN_ORIGIN]
    assert OWN_ORIGIN in response.content.decode().split('id="n-plus-one"')[1]
