from __future__ import annotations

import psycopg
from django.utils import timezone

from queryopt import snapshots, tasks
from queryopt.models import QueryTarget, SnapshotReason, StatementDelta, StatementSnapshot


def run_marker_query(dsn: str, times: int, marker: str = "qo_marker") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for value in range(times):
            conn.execute(f"SELECT %s::int + 1 AS {marker}", [value])


def marker_delta(snapshot: StatementSnapshot, marker: str = "qo_marker") -> StatementDelta | None:
    return snapshot.deltas.filter(shape__query_text__contains=marker).first()


def test_it_counts_exactly_the_calls_made_between_two_snapshots(target: QueryTarget) -> None:
    first = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert not first.deltas.exists()  # the first snapshot is the baseline
    run_marker_query(target.dsn, 7)
    second = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    delta = marker_delta(second)
    assert delta is not None
    assert delta.calls == 7
    assert delta.rows == 7
    assert delta.shape.target == target
    assert "$1" in delta.shape.query_text
    run_marker_query(target.dsn, 3)
    third = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert marker_delta(third).calls == 3
    assert marker_delta(third).shape == delta.shape
    fourth = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert marker_delta(fourth) is None  # not run in that window


def test_it_takes_the_new_values_as_the_delta_after_a_stats_reset(target: QueryTarget) -> None:
    run_marker_query(target.dsn, 9, "qo_reset_marker")
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    run_marker_query(target.dsn, 4, "qo_reset_marker")
    after = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert marker_delta(after, "qo_reset_marker").calls == 4


def test_it_takes_an_entry_whose_counters_went_down_as_started_over() -> None:
    assert snapshots.window_counts([3, 1.5, 3, 0, 0, 0, 0], [10, 9.0, 10, 0, 0, 0, 0]) == [
        3,
        1.5,
        3,
        0,
        0,
        0,
        0,
    ]
    assert snapshots.window_counts([12, 10.0, 12, 1, 0, 0, 0], [10, 9.0, 10, 0, 0, 0, 0]) == [
        2,
        1.0,
        2,
        1,
        0,
        0,
        0,
    ]


def test_it_snapshots_only_the_enabled_targets_that_are_due(
    target: QueryTarget, target_dsn: str
) -> None:
    resting = QueryTarget.objects.create(name="off", dsn=target_dsn, enabled=False)
    taken = tasks.snapshot_due_targets()
    assert len(taken) == 1
    assert StatementSnapshot.objects.get(pk=taken[0]).target == target
    assert StatementSnapshot.objects.get(pk=taken[0]).reason == SnapshotReason.SCHEDULED
    assert tasks.snapshot_due_targets() == []  # its 60 s interval has not passed
    QueryTarget.objects.filter(pk=target.pk).update(
        last_snapshot_at=timezone.now() - timezone.timedelta(seconds=61)
    )
    assert len(tasks.snapshot_due_targets()) == 1
    assert not resting.snapshots.exists()


def test_it_adds_up_a_statement_run_both_at_top_level_and_nested(target: QueryTarget) -> None:
    # track = all keeps a row per level for one queryid: both rows count, neither hides the other.
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION qo_nested(n int) RETURNS void LANGUAGE plpgsql AS "
            "$$ BEGIN FOR i IN 1..n LOOP EXECUTE 'SELECT 41 + 1 AS qo_level_marker'; "
            "END LOOP; END $$"
        )
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("SET pg_stat_statements.track = 'all'")
        conn.execute("SELECT qo_nested(5)")
        for _ in range(2):
            conn.execute("SELECT 41 + 1 AS qo_level_marker")
        levels = conn.execute(
            "SELECT toplevel, calls FROM pg_stat_statements WHERE query LIKE %s",
            ["SELECT%qo_level_marker"],
        ).fetchall()
    after = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert sorted(levels) == [(False, 5), (True, 2)]
    assert marker_delta(after, "qo_level_marker").calls == 7
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("SET pg_stat_statements.track = 'all'")
        conn.execute("SELECT qo_nested(3)")
        conn.execute("SELECT 41 + 1 AS qo_level_marker")
    # Each level against its own counters of the last snapshot.
    again = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert marker_delta(again, "qo_level_marker").calls == 4


def test_it_refreshes_a_fingerprints_stored_text(target: QueryTarget) -> None:
    def run_own_shape(times: int) -> None:
        # A shape of its own: fingerprints ignore constants and aliases, not operators.
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            for value in range(times):
                conn.execute("SELECT %s::bigint - 1 AS qo_text_marker", [value])

    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    run_own_shape(2)
    delta = marker_delta(snapshots.take_snapshot(target, SnapshotReason.MANUAL), "qo_text_marker")
    shape = delta.shape
    good_text = shape.query_text
    # As an older normaliser might have stored it.
    type(shape).objects.filter(pk=shape.pk).update(query_text="SELECT $1 qo_old")
    run_own_shape(1)
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    shape.refresh_from_db()
    assert shape.query_text == good_text
