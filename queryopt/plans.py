"""Plan analysis: an EXPLAIN (FORMAT JSON) document as rows of a tree, with problems flagged.

Pure: plain dicts in, dataclasses out. Works on plans with or without ANALYZE; the flags that
need measured rows (filtered-out rows, spills, loops) are only raised where the plan has them,
except the nested loop, judged on the outer side's estimate when nothing was measured.

    >>> rows = plan_rows({"Plan": {"Node Type": "Result", "Total Cost": 0.01, "Plan Rows": 1}})
    >>> rows[0].node_type, rows[0].depth, rows[0].problems
    ('Result', 0, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A sequential scan is worth an index when it reads this many rows or more...
LARGE_SCAN_ROWS = 10_000
# ...and throws away at least this many rows for every row it keeps.
FILTERED_OUT_RATIO = 10
# A nested loop runs its inner side this many times or more: one index probe each at best.
MANY_LOOPS = 1_000
# The planner's row estimate is off when actual and estimate differ by this factor.
ESTIMATE_OFF_FACTOR = 10


@dataclass(frozen=True)
class Problem:
    kind: str  # seq_scan_filter | disk_sort | hash_batches | nested_loop | estimate_off
    message: str


@dataclass
class PlanRow:
    node_type: str
    depth: int
    relation: str | None
    index: str | None
    startup_cost: float
    total_cost: float
    estimated_rows: float
    actual_rows: float | None  # per loop, as EXPLAIN reports them
    loops: int | None
    total_time_ms: float | None  # over all loops, children included
    self_time_ms: float | None
    time_share: float | None  # of the whole statement's execution, between 0 and 1
    problems: list[Problem] = field(default_factory=list)


def plan_rows(document: dict[str, Any]) -> list[PlanRow]:
    """The plan's nodes depth first, each with its measures and problems."""
    rows: list[PlanRow] = []
    root = document["Plan"]
    total_ms = document.get("Execution Time") or _node_time(root)
    _collect(root, 0, total_ms, rows)
    return rows


def plan_problems(document: dict[str, Any]) -> list[Problem]:
    """Every problem of the plan, in tree order."""
    return [problem for row in plan_rows(document) for problem in row.problems]


def _collect(
    node: dict[str, Any],
    depth: int,
    total_ms: float | None,
    rows: list[PlanRow],
    processes: int = 1,
) -> None:
    children = node.get("Plans", [])
    # Below a Gather, its workers and the leader run the same nodes at the same time.
    below = _processes_below(node, processes)
    own_ms = _node_time(node, processes)
    self_ms = None
    if own_ms is not None:
        self_ms = max(own_ms - sum(_node_time(child, below) or 0.0 for child in children), 0.0)
    rows.append(
        PlanRow(
            node_type=node["Node Type"],
            depth=depth,
            relation=node.get("Relation Name"),
            index=node.get("Index Name"),
            startup_cost=node.get("Startup Cost", 0.0),
            total_cost=node.get("Total Cost", 0.0),
            estimated_rows=node.get("Plan Rows", 0.0),
            actual_rows=node.get("Actual Rows"),
            loops=node.get("Actual Loops"),
            total_time_ms=own_ms,
            self_time_ms=self_ms,
            time_share=self_ms / total_ms if self_ms is not None and total_ms else None,
            problems=node_problems(node),
        )
    )
    for child in children:
        _collect(child, depth + 1, total_ms, rows, below)


def _processes_below(node: dict[str, Any], processes: int) -> int:
    if node["Node Type"] not in ("Gather", "Gather Merge"):
        return processes
    # The leader takes part too (parallel_leader_participation, on by default).
    return max(1, int(node.get("Workers Launched", node.get("Workers Planned", 0))) + 1)


def _node_time(node: dict[str, Any], processes: int = 1) -> float | None:
    """Wall-clock time of a node over its loops. EXPLAIN gives a parallel node's time as the
    average per process and its loops summed over the processes, which run at once."""
    if "Actual Total Time" not in node:
        return None
    loops = node.get("Actual Loops", 1)
    return node["Actual Total Time"] * max(loops / processes, 1)


def node_problems(node: dict[str, Any]) -> list[Problem]:
    """The problems of one plan node (its children are judged on their own)."""
    checks = (_seq_scan_filter, _disk_sort, _hash_batches, _nested_loop, _estimate_off)
    return [problem for check in checks if (problem := check(node)) is not None]


def _seq_scan_filter(node: dict[str, Any]) -> Problem | None:
    if node["Node Type"] not in {"Seq Scan", "Parallel Seq Scan"}:
        return None
    if "Rows Removed by Filter" not in node:
        return None
    loops = node.get("Actual Loops", 1)
    kept = node.get("Actual Rows", 0) * loops
    removed = node["Rows Removed by Filter"] * loops
    if kept + removed < LARGE_SCAN_ROWS or removed < FILTERED_OUT_RATIO * max(kept, 1):
        return None
    return Problem(
        "seq_scan_filter",
        f"sequential scan of {node.get('Relation Name', '?')} reads {kept + removed:,.0f} rows "
        f"and filters out {removed:,.0f} of them to keep {kept:,.0f}",
    )


def _disk_sort(node: dict[str, Any]) -> Problem | None:
    if node.get("Sort Space Type") != "Disk":
        return None
    return Problem(
        "disk_sort",
        f"sort spills {node.get('Sort Space Used', '?')} kB to disk (work_mem is too small for it)",
    )


def _hash_batches(node: dict[str, Any]) -> Problem | None:
    batches = node.get("Hash Batches", 1)
    if batches <= 1:
        return None
    return Problem("hash_batches", f"hash is split into {batches} batches on disk")


def _nested_loop(node: dict[str, Any]) -> Problem | None:
    children = node.get("Plans", [])
    if node["Node Type"] != "Nested Loop" or len(children) < 2:
        return None
    inner = children[1]
    if "Actual Loops" in inner:
        loops, measured = inner["Actual Loops"], "runs"
    else:
        loops, measured = children[0].get("Plan Rows", 0), "is estimated to run"
    if loops < MANY_LOOPS:
        return None
    return Problem("nested_loop", f"nested loop {measured} its inner side {loops:,.0f} times")


def _estimate_off(node: dict[str, Any]) -> Problem | None:
    if "Actual Rows" not in node or not node.get("Actual Loops"):
        return None  # not measured, or never executed
    actual, estimated = node["Actual Rows"], node.get("Plan Rows", 0)
    factor = max(actual, 1) / max(estimated, 1)
    if max(factor, 1 / factor) < ESTIMATE_OFF_FACTOR:
        return None
    direction = "under" if actual > estimated else "over"
    return Problem(
        "estimate_off",
        f"planner {direction}estimated rows {max(factor, 1 / factor):.0f}x "
        f"({estimated:,.0f} estimated, {actual:,.0f} actual)",
    )
