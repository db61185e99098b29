"""Indexes per target, the pool page, the run page's queries panel, and the DSN's password,
which no page may print."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import RunStatus
from offgridperf import panels
from queryopt import tasks
from queryopt.models import (
    IndexHint,
    IndexRecommendation,
    QueryPlan,
    QueryTarget,
    SnapshotReason,
)
from tests.queryopt.pages.conftest import PASSWORD, Seen, delta, make_run, snapshot

pytestmark = pytest.mark.django_db

AUTH_QUERIES = 2


def recommend(target: QueryTarget, statement: str, shapes: list[Any]) -> None:
    now = timezone.now()
    rec = IndexRecommendation.objects.create(
        target=target,
        table="rows",
        columns=["site_id"],
        statement=statement,
        cost_before=1000.0,
        cost_after=10.0,
        created_at=now,
        updated_at=now,
    )
    rec.shapes.set(shapes)


@pytest.mark.parametrize("url", ["/queries/indexes/", "/queries/pool/"])
def test_it_sends_a_stranger_to_the_login_page(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_indexes_page_shows_recommendations_and_hints_of_the_chosen_target(
    viewer_client: Any, seen: Seen
) -> None:
    other = QueryTarget.objects.create(name="billing", dsn="postgresql://b@127.0.0.1:1/b")
    recommend(seen.target, "CREATE INDEX CONCURRENTLY ON rows (site_id)", [seen.by_site])
    recommend(other, "CREATE INDEX CONCURRENTLY ON invoices (due)", [])
    IndexHint.objects.create(table="rows", columns=["site_id"], kind="preferred", note="ours")
    IndexHint.objects.create(
        target=other, table="invoices", columns=["due"], kind="rejected", note="write-heavy"
    )
    tasks.refresh_index_survey(seen.target.pk)  # the worker's reading, which fails
    body = viewer_client.get(f"/queries/indexes/?target={seen.target.pk}").content.decode()
    assert "ON rows (site_id)" in body and "ON invoices" not in body
    assert "preferred by a hint" in body
    assert f'href="/queries/{seen.by_site.pk}/"' in body
    hints = body.split('id="hints"', 1)[1]
    assert "ours" in hints and "every target" in hints and "write-heavy" not in hints
    # The target refused the worker's connection: the stored part stands, the reason is given.
    assert 'id="index-problem"' in body and "cannot connect" in body
    body = viewer_client.get(f"/queries/indexes/?target={other.pk}").content.decode()
    assert "ON invoices (due)" in body and "write-heavy" in body


def test_the_indexes_page_lists_unused_and_duplicate_indexes_of_a_live_target(
    viewer_client: Any, db: Any, pg: Any, scratch_dsn: str
) -> None:
    pg.execute("DROP TABLE IF EXISTS meters")
    pg.execute("CREATE TABLE meters (id bigint PRIMARY KEY, site int, kind text)")
    pg.execute("CREATE INDEX meters_site ON meters (site)")
    pg.execute("CREATE INDEX meters_site_kind ON meters (site, kind)")
    target = QueryTarget.objects.create(name="scratch", dsn=scratch_dsn)
    try:
        tasks.refresh_index_survey(target.pk)
        body = viewer_client.get(f"/queries/indexes/?target={target.pk}").content.decode()
    finally:
        pg.execute("DROP TABLE meters")  # the scratch database is shared by other modules
    assert 'id="index-problem"' not in body
    unused = body.split('id="unused-indexes"', 1)[1].split("</table>", 1)[0]
    assert "meters_site_kind" in unused and "meters_pkey" not in unused
    duplicate = body.split('id="duplicate-indexes"', 1)[1].split("</table>", 1)[0]
    assert "meters_site" in duplicate and "meters_site_kind" in duplicate  # covered by


def test_the_indexes_page_names_a_target_that_is_not_there(viewer_client: Any, seen: Seen) -> None:
    response = viewer_client.get("/queries/indexes/?target=nope")
    assert response.status_code == 400
    assert "target: there is no query target &#x27;nope&#x27;" in response.content.decode()


def test_the_pool_page_shows_the_settings_and_this_process(viewer_client: Any, db: Any) -> None:
    response = viewer_client.get("/queries/pool/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "DB_POOL_MAX" in body and 'id="pool-processes"' in body
    figures = response.context["figures"]
    assert figures["settings"]["max_size"] >= 1
    # Whether this test database is pooled or not, the page says which.
    assert figures["processes"] or figures["problems"]


def test_no_page_prints_the_dsn_password(viewer_client: Any, seen: Seen) -> None:
    seen.target.last_error = f"cannot connect to postgresql://shop:{PASSWORD}@db/shop"
    seen.target.save()
    QueryPlan.objects.create(
        shape=seen.by_site,
        captured_at=timezone.now(),
        plan_hash="x" * 16,
        plan={"Plan": {"Node Type": "Result", "Total Cost": 0.01, "Plan Rows": 1}},
        source="on_demand",
    )
    pages = [
        "/queries/",
        f"/queries/?target={seen.target.pk}",
        f"/queries/{seen.by_site.pk}/",
        f"/queries/{seen.report.pk}/",
        f"/queries/indexes/?target={seen.target.pk}",
        "/queries/pool/",
        f"/runs/{seen.run.pk}/",
    ]
    for url in pages:
        response = viewer_client.get(url)
        assert response.status_code == 200, url
        assert PASSWORD not in response.content.decode(), url


def test_the_run_page_lists_the_queries_of_the_run_window(viewer_client: Any, seen: Seen) -> None:
    response = viewer_client.get(f"/runs/{seen.run.pk}/")
    body = response.content.decode()
    assert 'id="panel-queries"' in body
    deltas = body.split('id="run-query-deltas"', 1)[1].split("</table>", 1)[0]
    # by_site's 40 calls came between run_start and run_end; report's 5 came before the run.
    assert f'href="/queries/{seen.by_site.pk}/"' in deltas
    assert '<td class="num">40</td>' in deltas
    assert f'href="/queries/{seen.report.pk}/"' not in deltas
    windows = body.split('id="run-query-windows"', 1)[1].split("</table>", 1)[0]
    assert "GET emissions.views.batches" in windows and "task emissions.recompute" not in windows
    assert "emissions/views.py:88 batches" in body.split('id="run-n-plus-one"', 1)[1]


def test_a_scheduled_snapshot_within_the_run_counts_towards_its_window(
    viewer_client: Any, seen: Seen
) -> None:
    middle = snapshot(seen.target, seen.start + timedelta(seconds=30), SnapshotReason.SCHEDULED)
    delta(middle, seen.report, calls=7, total_ms=70.0)
    later = make_run(seen.start + timedelta(hours=1))
    delta(
        snapshot(seen.target, later.finished_at, SnapshotReason.RUN_END, later),
        seen.report, calls=9, total_ms=90.0,
    )  # fmt: skip
    queries_panel = next(p for p in panels.registered_panels() if p.name == "queries")
    context = queries_panel.context(seen.run)
    calls = {row["shape_id"]: row["calls"] for row in context["deltas"]}
    assert calls == {seen.by_site.pk: 40, seen.report.pk: 7}


def test_a_queued_run_has_no_queries_panel_and_costs_no_query(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any
) -> None:
    queued = make_run(seen.start, status=RunStatus.QUEUED)
    queued.started_at = queued.finished_at = None
    queued.save()
    context = [p for p in panels.registered_panels() if p.name == "queries"][0].context
    with django_assert_num_queries(0):
        assert context(queued) is None


def test_the_run_page_adds_three_queries_for_the_panel(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any
) -> None:
    # run, intervals (the run page's own), then deltas, windows and N+1 groups; and the
    # profiles panel's captures of the run (none, so no memory samples)
    with django_assert_num_queries(AUTH_QUERIES + 6):
        admin_client.get(f"/runs/{seen.run.pk}/")


def test_a_failing_panel_leaves_the_run_page_standing(admin_client: Any, seen: Seen) -> None:
    def broken(run: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    panels.register_run_panel("broken", "Broken", "queryopt/run_panel.html", broken)
    try:
        response = admin_client.get(f"/runs/{seen.run.pk}/")
    finally:
        panels.unregister_run_panel("broken")
    assert response.status_code == 200
    body = response.content.decode()
    assert "The Broken panel could not be drawn" in body and 'id="panel-queries"' in body


def test_the_indexes_and_pool_pages_read_a_fixed_number_of_rows_queries(
    admin_client: Any, seen: Seen, django_assert_num_queries: Any
) -> None:
    for n in range(5):
        recommend(seen.target, f"CREATE INDEX CONCURRENTLY ON rows (c{n})", [seen.by_site])
        IndexHint.objects.create(table="rows", columns=[f"c{n}"], kind="preferred")
    tasks.refresh_index_survey(seen.target.pk)
    # targets, hints, recommendations, their shapes, the index survey
    with django_assert_num_queries(AUTH_QUERIES + 5):
        admin_client.get(f"/queries/indexes/?target={seen.target.pk}")
    # the pool's figures come from Redis and the process, not the database
    with django_assert_num_queries(AUTH_QUERIES):
        admin_client.get("/queries/pool/")


def test_panels_render_in_registration_order_and_a_none_context_leaves_one_out(
    seen: Seen,
) -> None:
    panels.register_run_panel("empty", "Empty", "queryopt/run_panel.html", lambda run: None)
    panels.register_run_panel("queries-again", "Again", "queryopt/run_panel.html", lambda run: {})
    try:
        shown = panels.run_panels(seen.run)
    finally:
        panels.unregister_run_panel("empty")
        panels.unregister_run_panel("queries-again")
    names = [panel["name"] for panel in shown]  # other apps may have panels of their own
    assert "empty" not in names and names.index("queries") < names.index("queries-again")
    assert 'id="run-query-deltas"' in shown[0]["html"]
