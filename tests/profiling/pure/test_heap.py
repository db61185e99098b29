from __future__ import annotations

import pytest

from profiling import heap
from profiling.heap import Block

MAIN = ("main", "app.py", 10)
GROW = ("grow", "app.py", 20)
CHURN = ("churn", "app.py", 30)


def blocks() -> list[Block]:
    return [
        Block((GROW, MAIN), 5_000_000, 50),
        Block((GROW, ("other_caller", "app.py", 40)), 1_000_000, 10),
        Block((CHURN, MAIN), 64_000, 2_000),
        Block((), 4_096, 1),
    ]


def test_it_ranks_the_places_that_allocate_by_bytes_summing_their_callers() -> None:
    top = heap.top_allocators(blocks())
    assert [(a.function, a.bytes, a.count) for a in top] == [
        ("grow", 6_000_000, 60),
        ("churn", 64_000, 2_000),
        ("<no Python stack>", 4_096, 1),
    ]
    assert (top[0].file, top[0].line) == ("app.py", 20)


def test_it_ranks_by_count_too() -> None:
    top = heap.top_allocators(blocks(), by="count", limit=2)
    assert [a.function for a in top] == ["churn", "grow"]


def test_it_refuses_an_unknown_ranking() -> None:
    with pytest.raises(ValueError, match="by must be one of bytes, count"):
        heap.top_allocators(blocks(), by="time")


def test_its_flame_tree_weighs_stacks_by_bytes_root_first() -> None:
    tree = heap.flame_tree(blocks())
    assert tree["value"] == 6_000_000 + 64_000 + 4_096
    main = next(child for child in tree["children"] if child["name"].startswith("main"))
    assert main["value"] == 5_064_000
    assert [child["name"] for child in main["children"]] == [
        "grow (app.py:20)",
        "churn (app.py:30)",
    ]


def test_its_summary_holds_the_top_allocators_and_the_leaks() -> None:
    found = heap.Heap(
        allocated=blocks(),
        leaked=blocks()[:1],
        peak_bytes=7_000_000,
        allocations=3_000,
        window_s=2.0,
    )
    summary = heap.summary(found, limit=2)
    assert summary["allocated_bytes"] == 6_000_000 + 64_000 + 4_096
    assert summary["top_by_bytes"][0] == {
        "function": "grow", "file": "app.py", "line": 20, "bytes": 6_000_000, "count": 60,
    }  # fmt: skip
    assert [row["function"] for row in summary["top_by_count"]] == ["churn", "grow"]
    assert summary["leaks"] == [
        {"function": "grow", "file": "app.py", "line": 20, "bytes": 5_000_000, "count": 50}
    ]
    assert (summary["leaked_bytes"], summary["leaked_count"]) == (5_000_000, 50)
