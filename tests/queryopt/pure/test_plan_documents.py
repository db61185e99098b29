"""Reading EXPLAIN documents without a server: the plan's rows, times shared once among
parallel workers, and a plan hash that ignores costs."""

from __future__ import annotations

from queryopt.explain import plan_hash
from queryopt.plans import plan_problems, plan_rows


def test_it_reads_a_plan_without_measures() -> None:
    document = {
        "Plan": {
            "Node Type": "Hash Join",
            "Total Cost": 10.0,
            "Plan Rows": 5,
            "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 4.0, "Plan Rows": 9},
                {"Node Type": "Hash", "Total Cost": 3.0, "Plan Rows": 2},
            ],
        }
    }
    rows = plan_rows(document)
    assert [(row.node_type, row.depth) for row in rows] == [
        ("Hash Join", 0),
        ("Seq Scan", 1),
        ("Hash", 1),
    ]
    assert all(row.time_share is None and row.actual_rows is None for row in rows)
    assert plan_problems(document) == []


def test_it_counts_parallel_workers_time_once_not_once_per_worker() -> None:
    # A Gather over a parallel scan that ran in 2 workers and the leader for about 45 ms
    # each: EXPLAIN gives the scan's time per process and its loops summed (3).
    scan = {
        "Node Type": "Seq Scan",
        "Parallel Aware": True,
        "Relation Name": "t",
        "Actual Total Time": 45.0,
        "Actual Loops": 3,
        "Actual Rows": 10,
        "Plan Rows": 10,
    }
    gather = {"Node Type": "Gather", "Workers Launched": 2, "Actual Total Time": 50.0,
              "Actual Loops": 1, "Actual Rows": 30, "Plan Rows": 30, "Plans": [scan]}  # fmt: skip
    rows = plan_rows({"Plan": gather, "Execution Time": 50.0})
    assert [row.node_type for row in rows] == ["Gather", "Seq Scan"]
    assert rows[1].total_time_ms == 45.0
    assert rows[0].self_time_ms == 5.0
    assert all(0.0 <= row.time_share <= 1.0 for row in rows)


def test_it_hashes_a_plan_without_its_costs() -> None:
    plan = {"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 1.0}}
    cheaper = {"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 9.0}}
    assert plan_hash(plan) == plan_hash(cheaper)
