from __future__ import annotations

from typing import Any

import psycopg
import pytest

from queryopt.explain import explain, explain_analyze
from queryopt.plans import plan_problems, plan_rows


@pytest.fixture
def serial(pg: psycopg.Connection[Any], big_table: str) -> psycopg.Connection[Any]:
    """A session with plans free of parallel workers, so their shape is the same everywhere."""
    pg.execute("SET max_parallel_workers_per_gather = 0")
    return pg


def kinds(document: dict[str, Any]) -> list[str]:
    return [problem.kind for problem in plan_problems(document)]


def test_it_lists_the_nodes_with_depth_cost_rows_loops_and_time_share(
    serial: psycopg.Connection[Any],
) -> None:
    document = explain_analyze(serial, "SELECT * FROM readings ORDER BY value LIMIT 10")["plan"]
    rows = plan_rows(document)
    assert [(row.node_type, row.depth) for row in rows] == [
        ("Limit", 0),
        ("Sort", 1),
        ("Seq Scan", 2),
    ]
    scan = rows[2]
    assert scan.relation == "readings"
    assert scan.actual_rows == 200_000 and scan.loops == 1
    assert scan.total_cost > 0 and scan.estimated_rows > 0
    shares = [row.time_share for row in rows]
    assert all(share is not None and 0 <= share <= 1 for share in shares)
    assert sum(shares) <= 1.0 + 1e-6


def test_it_flags_a_sequential_scan_that_filters_out_most_of_a_large_table(
    serial: psycopg.Connection[Any],
) -> None:
    document = explain_analyze(serial, "SELECT * FROM readings WHERE value = 3")["plan"]
    assert "seq_scan_filter" in kinds(document)
    whole = explain_analyze(serial, "SELECT * FROM readings WHERE value >= 0")["plan"]
    assert "seq_scan_filter" not in kinds(whole)


def test_it_flags_a_sort_that_spills_to_disk(serial: psycopg.Connection[Any]) -> None:
    serial.execute("SET work_mem = '64kB'")
    document = explain_analyze(serial, "SELECT * FROM readings ORDER BY value, taken")["plan"]
    assert "disk_sort" in kinds(document)


def test_it_flags_a_hash_split_into_batches(serial: psycopg.Connection[Any]) -> None:
    serial.execute("SET work_mem = '64kB'")
    serial.execute("SET enable_mergejoin = off")
    serial.execute("SET enable_nestloop = off")
    sql = "SELECT count(*) FROM readings a JOIN readings b ON a.id = b.sensor"
    assert "hash_batches" in kinds(explain_analyze(serial, sql)["plan"])


def test_it_flags_a_nested_loop_with_many_loops(serial: psycopg.Connection[Any]) -> None:
    serial.execute("SET enable_hashjoin = off")
    serial.execute("SET enable_mergejoin = off")
    sql = "SELECT count(*) FROM generate_series(1, 5000) g JOIN readings r ON r.id = g"
    assert "nested_loop" in kinds(explain_analyze(serial, sql)["plan"])
    # Without ANALYZE, the outer side's estimate stands in for the loops.
    assert "nested_loop" in kinds(explain(serial, sql)["plan"])


def test_it_flags_an_estimate_off_by_ten_times_or_more(serial: psycopg.Connection[Any]) -> None:
    # sensor decides site (5000 is a multiple of 40): the planner multiplies two selectivities.
    sql = "SELECT * FROM readings WHERE sensor = 7 AND site = 'site-7'"
    problems = plan_problems(explain_analyze(serial, sql)["plan"])
    off = [problem for problem in problems if problem.kind == "estimate_off"]
    assert off and "underestimated" in off[0].message


def test_it_flags_nothing_on_a_primary_key_lookup(serial: psycopg.Connection[Any]) -> None:
    document = explain_analyze(serial, "SELECT * FROM readings WHERE id = 42")["plan"]
    assert kinds(document) == []
