"""Stored plans and their hash history, on demand and for each new slow shape."""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
import pytest
from django.utils import timezone

from queryopt import planstore, tasks
from queryopt.models import PlanSource, QueryPlan, QueryShape, QueryTarget, SlowQuery
from tests.queryopt.targets.conftest import PASSWORD
from tests.queryopt.targets.test_cli import queryopt

SQL = "SELECT id, value FROM plan_readings WHERE sensor = 42"


def slow(shape: QueryShape, sql: str, params: list[Any] | None = None) -> SlowQuery:
    return SlowQuery.objects.create(
        shape=shape,
        captured_at=timezone.now(),
        duration_ms=250.0,
        sql=sql,
        params=params,
        origin="GET tests.view",
    )


def test_it_records_a_new_plan_hash_when_an_index_changes_the_plan(
    target: QueryTarget, plan_table: str
) -> None:
    code, first = queryopt("explain", "--target", target.name, SQL)
    assert code == 0, first
    assert "first plan stored for this query" in first and "Seq Scan" in first
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX plan_readings_sensor ON plan_readings (sensor)")
    try:
        code, second = queryopt("explain", "--target", target.name, SQL, "--json")
        code, third = queryopt("explain", "--target", target.name, SQL)
    finally:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX plan_readings_sensor")
    changed = json.loads(second)
    assert changed["changed"] is True and changed["previous_plan_hash"] != changed["plan_hash"]
    assert "plan unchanged since" in third and PASSWORD not in first + second + third
    (shape,) = QueryShape.objects.filter(target=target, plans__isnull=False).distinct()
    assert "$1" in shape.query_text
    history = planstore.plan_history(shape)
    assert [(h["plan_hash"], h["count"]) for h in history] == [
        (QueryPlan.objects.filter(shape=shape).order_by("pk")[0].plan_hash, 1),
        (changed["plan_hash"], 2),
    ]
    assert history[0]["last_seen"] <= history[1]["first_seen"]
    assert set(QueryPlan.objects.values_list("source", flat=True)) == {PlanSource.ON_DEMAND}


def test_it_plans_a_new_slow_fingerprint_once_with_its_kept_parameters(
    target: QueryTarget, plan_table: str
) -> None:
    generic = planstore.statement_shape(target, "SELECT * FROM plan_readings WHERE id = $1")
    slow(generic, "SELECT * FROM plan_readings WHERE id = ?")
    kept = planstore.statement_shape(target, SQL)
    slow(kept, "SELECT id, value FROM plan_readings WHERE sensor = %s", [7])
    planned_before = planstore.statement_shape(target, "SELECT count(*) FROM plan_readings")
    slow(planned_before, "SELECT count(*) FROM plan_readings")
    QueryPlan.objects.create(
        shape=planned_before,
        captured_at=timezone.now(),
        plan_hash="0" * 16,
        plan={"Plan": {"Node Type": "Result"}},
        source=PlanSource.ON_DEMAND,
    )
    plan_ids = tasks.explain_slow_queries()
    assert len(plan_ids) == 2
    by_shape = {p.shape_id: p for p in QueryPlan.objects.filter(pk__in=plan_ids)}
    assert by_shape[generic.pk].generic is True
    assert by_shape[kept.pk].generic is False
    assert "'7'" in by_shape[kept.pk].plan["Plan"]["Filter"]  # planned with the kept value
    assert {p.source for p in by_shape.values()} == {PlanSource.SLOW}
    assert tasks.explain_slow_queries() == []  # already planned: not planned again
    assert planned_before.plans.count() == 1
    assert QueryPlan.objects.count() == 3


def test_it_plans_a_slow_query_of_its_own_database(db: Any) -> None:
    own = QueryShape.objects.create(
        target=None,
        fingerprint="own-1",
        query_text="SELECT name FROM queryopt_querytarget WHERE id = $1",
    )
    slow(own, own.query_text)
    (plan_id,) = tasks.explain_slow_queries()
    plan = QueryPlan.objects.get(pk=plan_id)
    assert (plan.shape, plan.generic, plan.source) == (own, True, PlanSource.SLOW)
    assert "queryopt_querytarget" in json.dumps(plan.plan)


def test_it_gives_up_on_a_fingerprint_that_cannot_be_planned(
    target: QueryTarget, caplog: pytest.LogCaptureFixture
) -> None:
    missing = planstore.statement_shape(target, "SELECT a FROM no_such_table WHERE a = $1")
    slow(missing, missing.query_text)
    unparsable = QueryShape.objects.create(
        target=target, fingerprint="rbad", query_text="SELEC ? FROM nowhere"
    )
    slow(unparsable, unparsable.query_text)
    with caplog.at_level(logging.WARNING, logger="queryopt.planstore"):
        for _ in range(planstore.MAX_EXPLAIN_ATTEMPTS + 2):
            assert tasks.explain_slow_queries() == []
    failures = [r.getMessage() for r in caplog.records if "cannot explain" in r.getMessage()]
    # A missing table may be created later: three tries. A refusal by a rule: one.
    assert sum(f"query shape {missing.pk} " in f for f in failures) == 3
    assert sum(f"query shape {unparsable.pk} " in f for f in failures) == 1
    assert not any(PASSWORD in f for f in failures)
    assert not QueryPlan.objects.exists()


def test_it_plans_a_fingerprint_on_demand_with_its_kept_parameters(
    target: QueryTarget, plan_table: str
) -> None:
    shape = planstore.statement_shape(target, SQL)
    slow(shape, "SELECT id, value FROM plan_readings WHERE sensor = %s", [9])
    plan = planstore.explain_shape(shape)
    assert (plan.source, plan.generic, plan.shape) == (
        PlanSource.ON_DEMAND,
        False,
        shape,
    )
    assert "'9'" in plan.plan["Plan"]["Filter"]
    assert planstore.plan_changed(plan) is None  # its first plan
    assert planstore.plan_changed(planstore.explain_shape(shape)) is False


def test_it_plans_a_target_query_whose_mean_time_reached_the_targets_threshold(
    target: QueryTarget, plan_table: str
) -> None:
    from queryopt.models import SnapshotReason, StatementDelta, StatementSnapshot

    snapshot = StatementSnapshot.objects.create(
        target=target, taken_at=timezone.now(), reason=SnapshotReason.MANUAL
    )

    def window(sql: str, mean_ms: float) -> QueryShape:
        shape = planstore.statement_shape(target, sql)
        StatementDelta.objects.create(
            snapshot=snapshot, shape=shape, calls=2, total_exec_time_ms=2 * mean_ms,
            mean_exec_time_ms=mean_ms, min_exec_time_ms=mean_ms, max_exec_time_ms=mean_ms,
            stddev_exec_time_ms=0, rows=2, shared_blks_hit=0, shared_blks_read=0,
            temp_blks_read=0, temp_blks_written=0,
        )  # fmt: skip
        return shape

    target.slow_threshold_ms = 100
    target.save()
    slow_one = window("SELECT value FROM plan_readings WHERE sensor = $1", 150.0)
    fast_one = window("SELECT value FROM plan_readings WHERE id = $1", 3.0)
    plan_ids = tasks.explain_slow_queries()
    assert [p.shape_id for p in QueryPlan.objects.filter(pk__in=plan_ids)] == [slow_one.pk]
    assert not fast_one.plans.exists()
