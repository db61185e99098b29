"""`queryopt recommend` and `queryopt explain` against a target database of their own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.utils import timezone
from psycopg import sql

from queryopt import snapshots
from queryopt.models import (
    QueryShape,
    QueryTarget,
    SnapshotReason,
    StatementDelta,
    StatementSnapshot,
)
from queryopt.targets import CONNECT_FAILED
from tests.conftest import closed_port
from tests.queryopt.targets.conftest import (  # noqa: F401 - fixtures
    PASSWORD,
    run_sql,
    server_dsn,
    target,
    target_database,
    target_dsn,
)
from tests.queryopt.targets.test_cli import queryopt

TABLE = "cli_readings"


@pytest.fixture(scope="module")
def big_target_table(target_database: str) -> Iterator[str]:  # noqa: F811 - a fixture
    """200,000 analysed rows with a primary key and no other index, dropped at the end."""
    dsn = server_dsn(target_database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cli_readings")
        conn.execute(
            "CREATE TABLE cli_readings (id bigint PRIMARY KEY, sensor integer NOT NULL, "
            "value double precision NOT NULL)"
        )
        conn.execute(
            "INSERT INTO cli_readings SELECT g, g % 5000, (g * 7919) % 1000 "
            "FROM generate_series(1, 200000) g"
        )
        conn.execute("ANALYZE cli_readings")
    try:
        yield TABLE
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS cli_readings")


def run_queries(dsn: str, times: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for value in range(times):
            conn.execute("SELECT id, value FROM cli_readings WHERE sensor = %s", [value])
            conn.execute("SELECT value FROM cli_readings WHERE id = %s", [value + 1])


def window(target: QueryTarget, times: int = 20) -> None:  # noqa: F811
    """A snapshot window in which the sensor and primary-key lookups ran `times` times each."""
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    run_queries(target.dsn, times)
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)


def recommended(name: str) -> list[dict[str, Any]]:
    code, output = queryopt("recommend", "--target", name, "--json")
    assert code == 0, output
    assert PASSWORD not in output
    return json.loads(output)


def for_table(recommendations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recommendations if r["table"] == TABLE]


@pytest.mark.slow
def test_it_recommends_the_unindexed_column_and_nothing_once_the_index_exists(
    target: QueryTarget,  # noqa: F811
    big_target_table: str,
) -> None:
    window(target)
    (recommendation,) = for_table(recommended(target.name))
    assert recommendation["columns"] == ["sensor"]
    assert recommendation["statement"] == (
        f'CREATE INDEX CONCURRENTLY ON "public"."{TABLE}" ("sensor")'
    )
    assert recommendation["cost_after"] <= recommendation["cost_before"] / 2
    assert recommendation["validated"] is True
    assert len(recommendation["fingerprints"]) == 1
    assert set(recommendation) >= {
        "table",
        "columns",
        "statement",
        "cost_before",
        "cost_after",
        "fingerprints",
    }
    code, output = queryopt("recommend", "--target", target.name)
    assert code == 0, output
    assert f"{TABLE} (sensor)" in output and "cost " in output and "saving " in output
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX cli_readings_sensor ON cli_readings (sensor)")
    try:
        window(target)
        assert for_table(recommended(target.name)) == []
        code, output = queryopt("recommend", "--target", target.name)
        assert (code, TABLE in output) == (0, False)
    finally:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS cli_readings_sensor")


def test_it_refuses_to_explain_analyze_an_update_and_changes_no_row(
    target: QueryTarget,  # noqa: F811
    big_target_table: str,
) -> None:
    code, output = queryopt(
        "explain",
        "--target",
        target.name,
        "UPDATE cli_readings SET value = -1 WHERE id = 1",
        "--analyze",
    )
    assert (code, output) == (
        2,
        "refused: select only: EXPLAIN ANALYZE runs only a SELECT, not UPDATE",
    )
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM cli_readings WHERE id = 1").fetchone() == (
            7919 % 1000,
        )


def test_it_explains_with_the_plan_hash_and_the_problems(
    target: QueryTarget,  # noqa: F811
    big_target_table: str,
) -> None:
    sql = "SELECT id FROM cli_readings WHERE sensor = 17"
    code, output = queryopt("explain", "--target", target.name, sql, "--analyze", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert len(result["plan_hash"]) == 16 and result["analyzed"] is True
    assert "Seq Scan" in json.dumps(result["plan"])
    assert any("filters out" in problem for problem in result["problems"])
    code, output = queryopt("explain", "--target", target.name, sql)
    assert code == 0, output
    assert f"Seq Scan on {TABLE}" in output and "rows 40 estimated" in output
    assert PASSWORD not in output


def test_it_exits_2_for_an_unknown_target(db: Any) -> None:
    assert queryopt("recommend", "--target", "nothere") == (
        2,
        "--target 'nothere': no such query target",
    )
    assert queryopt("explain", "--target", "nothere", "SELECT 1") == (
        2,
        "--target 'nothere': no such query target",
    )


def test_it_exits_0_with_an_empty_list_when_there_is_nothing_to_recommend(db: Any) -> None:
    assert queryopt("recommend", "--json") == (0, "[]\n")


@pytest.fixture
def no_hypopg_target(db: Any, target_database: str) -> Iterator[QueryTarget]:  # noqa: F811
    """A target whose role may not create HypoPG, on a database without it, with one costly
    shape stored as if a snapshot had seen it."""
    name, role = f"{target_database}_nohypo", f"offgridperf_qo_cli_{os.getpid()}"
    run_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    run_sql(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    run_sql("CREATE TABLE meters (id bigint PRIMARY KEY, site text NOT NULL)", name)
    run_sql(sql.SQL("GRANT SELECT ON meters TO {}").format(sql.Identifier(role)), name)
    try:
        target = QueryTarget.objects.create(
            name="nohypo", dsn=server_dsn(name, user=role, password=PASSWORD)
        )
        snapshot = StatementSnapshot.objects.create(
            target=target, taken_at=timezone.now(), reason=SnapshotReason.MANUAL
        )
        shape = QueryShape.objects.create(
            target=target, fingerprint="42", query_text="SELECT id FROM meters WHERE site = $1"
        )
        StatementDelta.objects.create(
            snapshot=snapshot,
            shape=shape,
            calls=10,
            total_exec_time_ms=500.0,
            mean_exec_time_ms=50.0,
            min_exec_time_ms=40.0,
            max_exec_time_ms=60.0,
            stddev_exec_time_ms=5.0,
            rows=10,
            shared_blks_hit=0,
            shared_blks_read=0,
            temp_blks_read=0,
            temp_blks_written=0,
        )
        yield target
    finally:
        run_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        run_sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_it_marks_advice_without_hypopg_not_validated_and_says_what_to_run(
    no_hypopg_target: QueryTarget,
) -> None:
    (recommendation,) = recommended("nohypo")
    assert recommendation["columns"] == ["site"] and recommendation["table"] == "meters"
    assert (recommendation["validated"], recommendation["cost_after"]) == (False, None)
    assert recommendation["fingerprints"] == ["42"]
    code, output = queryopt("recommend", "--target", "nohypo")
    assert code == 0, output
    assert "nohypo: not validated by the planner (hypopg is not created" in output
    assert "CREATE EXTENSION IF NOT EXISTS hypopg;" in output
    assert "meters (site)" in output and "-> not validated" in output
    assert PASSWORD not in output


def test_it_names_the_unreachable_target_in_one_line_without_its_password(db: Any) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres"
    QueryTarget.objects.create(name="down", dsn=dsn)
    for args in (("recommend",), ("explain", "--target", "down", "SELECT 1")):
        code, output = queryopt(*args)
        assert code == 2
        assert output == f"down: {CONNECT_FAILED}", output
        assert "\n" not in output and PASSWORD not in output
