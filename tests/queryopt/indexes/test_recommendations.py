"""Recommendations kept as rows, steered by index hints, and measured once applied."""

from __future__ import annotations

import json

import psycopg

from queryopt import recommend, snapshots
from queryopt.models import (
    HintKind,
    IndexHint,
    IndexRecommendation,
    QueryTarget,
    RecommendationStatus,
    SnapshotReason,
)
from tests.queryopt.indexes.conftest import TABLE, run_lookups, window
from tests.queryopt.targets.conftest import PASSWORD
from tests.queryopt.targets.test_cli import queryopt


def advised(target: QueryTarget) -> set[tuple[str, ...]]:
    advice = recommend.recommend(target)
    return {tuple(r.columns) for r in advice.advice.recommendations if r.table == TABLE}


def stored(target: QueryTarget) -> list[IndexRecommendation]:
    return list(IndexRecommendation.objects.filter(target=target, table=TABLE).order_by("pk"))


def test_it_keeps_recommendations_and_updates_them_instead_of_adding_new_ones(
    target: QueryTarget, advised_table: str
) -> None:
    window(target)
    assert advised(target) == {("sensor",), ("site",)}
    first = stored(target)
    assert sorted(r.columns for r in first) == [["sensor"], ["site"]]
    assert all(r.validated and r.status == RecommendationStatus.OPEN for r in first)
    for row in first:
        (shape,) = row.shapes.all()
        assert f'"{row.columns[0]}" = $1' in shape.query_text
        assert row.cost_after <= row.cost_before / 2
    window(target)
    assert advised(target) == {("sensor",), ("site",)}
    again = stored(target)
    assert [r.pk for r in again] == [r.pk for r in first]
    assert all(b.updated_at > a.updated_at for a, b in zip(first, again, strict=True))
    assert all(b.created_at == a.created_at for a, b in zip(first, again, strict=True))


def test_it_never_recommends_what_a_rejected_hint_names_and_shows_preferred_ones(
    target: QueryTarget, advised_table: str
) -> None:
    other = QueryTarget.objects.create(name="other", dsn=target.dsn)
    IndexHint.objects.create(target=other, table=TABLE, columns=["site"], kind=HintKind.REJECTED)
    window(target)
    assert advised(target) == {("sensor",), ("site",)}  # another target's hint does not count
    IndexHint.objects.create(
        target=None, table=f"public.{TABLE}", columns=["sensor"], kind=HintKind.REJECTED
    )
    IndexHint.objects.create(
        target=target, table=TABLE, columns=["site"], kind=HintKind.PREFERRED, note="by ops"
    )
    assert advised(target) == {("site",)}
    code, output = queryopt("recommend", "--target", target.name, "--json")
    assert code == 0, output
    rows = [r for r in json.loads(output) if r["table"] == TABLE]
    assert [(r["columns"], r["preferred_hint"]) for r in rows] == [
        (["site"], {"columns": ["site"], "note": "by ops"})
    ]
    code, output = queryopt("recommend", "--target", target.name)
    assert code == 0, output
    assert "matches a preferred hint: by ops" in output
    assert f"preferred hint: {TABLE} (site): by ops" in output
    assert PASSWORD not in output


def test_it_marks_a_recommendation_applied_and_measures_before_and_after(
    target: QueryTarget, advised_table: str
) -> None:
    window(target, times=6, columns=("sensor",))
    run_lookups(target.dsn, 4, ("sensor",))
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)  # before: 6 + 4 calls
    assert advised(target) == {("sensor",)}
    (recommendation,) = stored(target)
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX advised_sensor ON {TABLE} (sensor, value)")
    try:
        marking = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
        recommendation.refresh_from_db()
        assert recommendation.status == RecommendationStatus.APPLIED
        assert recommendation.applied_index == "advised_sensor"
        assert recommendation.applied_at == marking.taken_at
        assert recommendation.before_calls == 10
        assert recommendation.before_mean_ms is not None and recommendation.before_mean_ms > 0
        assert recommendation.after_calls is None  # nothing ran since
        run_lookups(target.dsn, 3, ("sensor",))
        snapshots.take_snapshot(target, SnapshotReason.MANUAL)
        run_lookups(target.dsn, 2, ("sensor",))
        snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    finally:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS advised_sensor")
    recommendation.refresh_from_db()
    assert recommendation.after_calls == 5
    assert recommendation.after_mean_ms is not None and recommendation.after_mean_ms > 0
    assert recommendation.before_calls == 10  # kept as measured when applied


def test_it_leaves_a_recommendation_open_while_its_index_does_not_exist(
    target: QueryTarget, advised_table: str
) -> None:
    window(target, columns=("site",))
    assert advised(target) == {("site",)}
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        # Leads with another column: no help to `WHERE site = $1`.
        conn.execute(f"CREATE INDEX advised_value_site ON {TABLE} (value, site)")
    try:
        snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    finally:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS advised_value_site")
    (recommendation,) = stored(target)
    assert (recommendation.status, recommendation.applied_at) == (RecommendationStatus.OPEN, None)
