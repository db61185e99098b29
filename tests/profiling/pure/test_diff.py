"""profiling.diff: plain dicts in, rows out."""

from __future__ import annotations

from typing import Any

from profiling import diff


def stat(function: str, self_samples: int, total_samples: int, **extra: Any) -> dict[str, Any]:
    return {
        "function": function,
        "file": extra.get("file", "app.py"),
        "line": extra.get("line", 1),
        "self_samples": self_samples,
        "total_samples": total_samples,
    }


def by_function(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["function"]: row for row in rows}


def test_it_normalises_shares_per_sample() -> None:
    # a: 200 samples, b: 50 samples; `work` goes from 100/200 (50%) to 10/50 (20%).
    rows = by_function(diff.diff([stat("work", 100, 150)], [stat("work", 10, 40)], 200, 50))
    work = rows["work"]
    assert (work["a_self_pct"], work["b_self_pct"], work["self_delta"]) == (50.0, 20.0, -30.0)
    assert (work["a_total_pct"], work["b_total_pct"], work["total_delta"]) == (75.0, 80.0, 5.0)
    assert work["in_a"] and work["in_b"]


def test_it_ranks_by_the_largest_change_of_either_share() -> None:
    a = [stat("steady", 50, 50, line=1), stat("slower", 10, 20, line=2)]
    b = [stat("steady", 49, 50, line=1), stat("slower", 10, 60, line=2), stat("new", 5, 5)]
    rows = diff.diff(a, b, 100, 100)
    assert [row["function"] for row in rows] == ["slower", "new", "steady"]
    assert rows[0]["total_delta"] == 40.0
    assert rows[1]["in_a"] is False and rows[1]["a_self_pct"] == 0.0


def test_it_counts_a_function_missing_on_one_side_as_zero() -> None:
    rows = by_function(diff.diff([stat("gone", 30, 30)], [], 100, 100))
    assert rows["gone"]["b_self_pct"] == 0.0 and rows["gone"]["self_delta"] == -30.0
    assert rows["gone"]["in_b"] is False


def test_it_matches_a_function_that_moved_to_another_line() -> None:
    rows = diff.diff([stat("work", 10, 10, line=5)], [stat("work", 20, 20, line=9)], 100, 100)
    assert len(rows) == 1
    assert rows[0]["line"] == 9 and rows[0]["self_delta"] == 10.0


def test_it_keeps_two_same_named_functions_of_a_file_apart() -> None:
    a = [stat("__init__", 10, 10, line=5), stat("__init__", 20, 20, line=40)]
    b = [stat("__init__", 10, 10, line=5), stat("__init__", 5, 5, line=41)]
    rows = diff.diff(a, b, 100, 100)
    # line 5 meets itself; 40 and 41 are one left over each side with the same name: moved.
    assert sorted((row["line"], row["self_delta"]) for row in rows) == [(5, 0.0), (41, -15.0)]


def test_it_gives_samples_per_thousand_requests_when_both_have_requests() -> None:
    rows = diff.diff(
        [stat("work", 100, 200)], [stat("work", 300, 300)], 1000, 1000,
        a_requests=10_000, b_requests=20_000,
    )  # fmt: skip
    work = rows[0]
    assert (work["a_self_per_k"], work["b_self_per_k"], work["self_per_k_delta"]) == (
        10.0, 15.0, 5.0,
    )  # fmt: skip
    assert (work["a_total_per_k"], work["b_total_per_k"]) == (20.0, 15.0)


def test_it_leaves_per_request_figures_out_when_one_side_has_no_requests() -> None:
    rows = diff.diff([stat("work", 1, 1)], [stat("work", 1, 1)], 10, 10, a_requests=500)
    assert rows[0]["a_self_per_k"] is None and rows[0]["self_per_k_delta"] is None


def test_it_limits_the_rows_and_survives_empty_captures() -> None:
    many = [stat(f"f{i}", i, i, line=i) for i in range(80)]
    assert len(diff.diff(many, [], 100, 0, limit=10)) == 10
    assert diff.diff([], [], 0, 0) == []
    assert diff.share_pct(5, 0) == 0.0


def allocator(function: str, size: int, count: int, line: int = 1) -> dict[str, object]:
    return {"function": function, "file": "m.py", "line": line, "bytes": size, "count": count}


def test_it_lists_the_allocators_that_grew_most_first_and_only_those() -> None:
    a = [allocator("cache", 1_000, 10), allocator("parse", 5_000, 50), allocator("gone", 9, 1)]
    b = [allocator("cache", 8_000, 80), allocator("parse", 4_000, 40), allocator("new", 2_000, 2)]
    rows = diff.allocator_growth(a, b)
    assert [(r["function"], r["bytes_delta"], r["in_a"]) for r in rows] == [
        ("cache", 7_000, True),
        ("new", 2_000, False),
    ]
    assert (rows[0]["a_count"], rows[0]["b_count"], rows[0]["count_delta"]) == (10, 80, 70)


def test_an_allocator_moved_by_an_edit_still_meets_itself() -> None:
    rows = diff.allocator_growth(
        [allocator("cache", 1_000, 1, line=4)], [allocator("cache", 3_000, 3, line=6)]
    )
    assert [(r["line"], r["bytes_delta"]) for r in rows] == [(6, 2_000)]
