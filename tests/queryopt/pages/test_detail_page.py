"""One query's page: chart data from windows and snapshots, the plan tree with its problems,
plan hash history, recommendations, slow samples and N+1 groups."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from offgridperf.celery import app as celery_app
from queryopt import tasks
from queryopt.models import (
    IndexRecommendation,
    PlanSource,
    QueryPlan,
    QueryShape,
    QueryTarget,
)
from tests.queryopt.pages.conftest import PASSWORD, Seen

pytestmark = pytest.mark.django_db

AUTH_QUERIES = 2

# An analysed plan whose scan reads 200,000 rows to keep 40: plans.py flags it.
SCAN_PLAN = {
    "Plan": {
        "Node Type": "Seq Scan",
        "Relation Name": "rows",
        "Startup Cost": 0.0,
        "Total Cost": 4000.0,
        "Plan Rows": 40,
        "Actual Rows": 40,
        "Actual Loops": 1,
        "Actual Total Time": 30.0,
        "Rows Removed by Filter": 199960,
    },
    "Execution Time": 30.0,
}
INDEX_PLAN = {
    "Plan": {
        "Node Type": "Index Scan",
        "Relation Name": "rows",
        "Index Name": "rows_site_id_idx",
        "Startup Cost": 0.4,
        "Total Cost": 8.5,
        "Plan Rows": 40,
    }
}


def page_json(response: Any, element_id: str) -> Any:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def plan(seen: Seen, document: dict, plan_hash: str, minutes_ago: int) -> QueryPlan:
    return QueryPlan.objects.create(
        shape=seen.by_site,
        captured_at=timezone.now() - timedelta(minutes=minutes_ago),
        plan_hash=plan_hash,
        plan=document,
        analyzed="Execution Time" in document,
        total_cost=document["Plan"]["Total Cost"],
        source=PlanSource.SLOW,
    )


@pytest.fixture
def planned(seen: Seen) -> Seen:
    plan(seen, INDEX_PLAN, "aaaa111122223333", 50)
    plan(seen, INDEX_PLAN, "aaaa111122223333", 40)
    plan(seen, SCAN_PLAN, "bbbb444455556666", 30)
    now = timezone.now()
    rec = IndexRecommendation.objects.create(
        target=seen.target,
        table="rows",
        columns=["site_id"],
        statement="CREATE INDEX CONCURRENTLY ON rows (site_id)",
        cost_before=4000.0,
        cost_after=8.5,
        created_at=now,
        updated_at=now,
        status="applied",
        applied_index="rows_site_id_idx",
        before_mean_ms=10.0,
        after_mean_ms=0.25,
    )
    rec.shapes.add(seen.by_site)
    return seen


def test_it_sends_a_stranger_to_the_login_page(client: Any, seen: Seen) -> None:
    response = client.get(f"/queries/{seen.by_site.pk}/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_gives_404_for_an_unknown_query(viewer_client: Any, db: Any) -> None:
    assert viewer_client.get("/queries/987654/").status_code == 404


def test_it_charts_calls_mean_and_p95_per_minute_and_per_snapshot(
    viewer_client: Any, seen: Seen
) -> None:
    response = viewer_client.get(f"/queries/{seen.by_site.pk}/")
    assert response.status_code == 200
    chart = page_json(response, "query-data")
    # Three days ago, then both run windows in one minute (the run starts on a whole second,
    # 5 and 6 s after it may straddle a minute: then two points).
    assert sum(point["calls"] for point in chart["app"]) == 102
    assert chart["app"][0]["calls"] == 2 and chart["app"][0]["p95"] == pytest.approx(50, rel=0.01)
    assert [point["calls"] for point in chart["target"]] == [40]
    assert chart["target"][0]["mean"] == 10.0
    body = response.content.decode()
    assert '<canvas id="chart-query-stats">' in body and "queryopt/detail.js" in body


def test_it_shows_the_latest_plan_as_a_tree_with_its_problems(
    viewer_client: Any, planned: Seen
) -> None:
    body = viewer_client.get(f"/queries/{planned.by_site.pk}/").content.decode()
    tree = body.split('id="plan"', 1)[1].split("</section>", 1)[0]
    assert "Seq Scan" in tree and "bbbb444455556666" in tree
    assert 'class="plan-problem"' in tree and 'data-kind="seq_scan_filter"' in tree
    assert "filters out 199,960" in tree
    assert "100.0%" in tree  # the only node takes the statement's whole time


def test_it_marks_where_the_plan_hash_changed(viewer_client: Any, planned: Seen) -> None:
    response = viewer_client.get(f"/queries/{planned.by_site.pk}/")
    epochs = response.context["plan_epochs"]
    assert [(e.plan_hash, e.count, e.changed) for e in epochs] == [
        ("bbbb444455556666", 1, True),
        ("aaaa111122223333", 2, False),
    ]
    assert response.content.decode().count("plan changed") == 1


def test_it_lists_recommendations_with_measured_means(viewer_client: Any, planned: Seen) -> None:
    body = viewer_client.get(f"/queries/{planned.by_site.pk}/").content.decode()
    recs = body.split('id="recommendations"', 1)[1].split("</section>", 1)[0]
    assert "CREATE INDEX CONCURRENTLY ON rows (site_id)" in recs
    assert "100%" in recs and "10.000 ms" in recs and "0.250 ms" in recs and "Applied" in recs


def test_it_shows_slow_samples_and_n_plus_one_groups(viewer_client: Any, seen: Seen) -> None:
    body = viewer_client.get(f"/queries/{seen.by_site.pk}/").content.decode()
    assert "emissions/views.py:120 by_site" in body
    body = viewer_client.get(f"/queries/{seen.batches.pk}/").content.decode()
    groups = body.split('id="n-plus-one"', 1)[1].split("</section>", 1)[0]
    assert "emissions/views.py:88 batches" in groups and f"#{seen.run.pk}" in groups


def test_it_reads_the_page_in_a_fixed_number_of_queries(
    admin_client: Any, planned: Seen, django_assert_num_queries: Any
) -> None:
    # shape, latest plan, windows, deltas, plan hashes, recommendations, slow, N+1
    with django_assert_num_queries(AUTH_QUERIES + 8):
        admin_client.get(f"/queries/{planned.by_site.pk}/")
    for minutes in range(20):
        plan(planned, INDEX_PLAN, f"cccc{minutes:012d}", minutes)
    with django_assert_num_queries(AUTH_QUERIES + 8):
        admin_client.get(f"/queries/{planned.by_site.pk}/")


# -- Explain now -----------------------------------------------------------------------------


def test_explain_now_needs_the_permission(viewer_client: Any, seen: Seen) -> None:
    body = viewer_client.get(f"/queries/{seen.by_site.pk}/").content.decode()
    assert 'id="explain-now"' not in body
    assert viewer_client.post(f"/queries/{seen.by_site.pk}/explain/").status_code == 403
    assert not QueryPlan.objects.exists()


def test_explain_now_plans_the_query_on_its_target_and_shows_the_plan(
    admin_client: Any, db: Any, pg: Any, scratch_dsn: str
) -> None:
    pg.execute("DROP TABLE IF EXISTS readouts")
    pg.execute("CREATE TABLE readouts (id bigint PRIMARY KEY, site int NOT NULL, value float)")
    target = QueryTarget.objects.create(name="scratch", dsn=scratch_dsn)
    shape = QueryShape.objects.create(
        target=target, fingerprint="f-readouts", query_text="SELECT * FROM readouts WHERE site = $1"
    )
    assert 'id="explain-now"' in admin_client.get(f"/queries/{shape.pk}/").content.decode()
    response = admin_client.post(f"/queries/{shape.pk}/explain/", follow=True)
    body = response.content.decode()
    # The request only asks: the worker plans, and the page waits for it.
    assert not QueryPlan.objects.exists()
    assert 'id="explain-pending"' in body and 'http-equiv="refresh"' in body
    assert tasks.explain_shape(shape.pk) is not None
    stored = QueryPlan.objects.get(shape=shape)
    assert stored.source == PlanSource.ON_DEMAND and stored.generic is True
    body = admin_client.get(f"/queries/{shape.pk}/").content.decode()
    assert 'id="explain-pending"' not in body
    tree = body.split('id="plan"', 1)[1].split("</section>", 1)[0]
    assert "readouts" in tree and stored.plan_hash in tree


def test_explain_now_reports_an_unreachable_target_without_its_password(
    admin_client: Any, seen: Seen
) -> None:
    admin_client.post(f"/queries/{seen.report.pk}/explain/")
    assert tasks.explain_shape(seen.report.pk) is None
    body = admin_client.get(f"/queries/{seen.report.pk}/").content.decode()
    assert 'id="explain-problem"' in body and "Not planned: cannot connect" in body
    assert 'id="explain-pending"' not in body
    assert PASSWORD not in body
    assert not QueryPlan.objects.exists()


def test_a_plan_asked_for_under_the_tasks_former_name_is_still_taken(
    admin_client: Any, seen: Seen
) -> None:
    # A message queued before explain_fingerprint became explain_shape carries the old name.
    admin_client.post(f"/queries/{seen.report.pk}/explain/")
    former = celery_app.tasks["queryopt.tasks.explain_fingerprint"]
    assert former.apply(args=(seen.report.pk,)).get() is None
    body = admin_client.get(f"/queries/{seen.report.pk}/").content.decode()
    assert 'id="explain-problem"' in body and "Not planned: cannot connect" in body
