"""The diff of two CPU captures: which functions' share of the samples changed most; and of
two allocation captures: which allocators grew (`allocator_growth`).

Pure: no Django. Each capture comes in as its top functions (plain dicts with `function`,
`file`, `line`, `self_samples`, `total_samples`), its sample count and, when it was taken during
a load-test run, that run's request count. Shares are normalised per sample (percent of the
capture's samples, so captures of different lengths or rates compare) and, when both captures
have a request count, per request (samples per 1,000 requests: CPU work per unit of load).

A function is matched on (function, file, line); one left over on both sides with the same
function and file is matched too, so that a function moved by an edit between the two
captures still meets itself. A function missing from one side's top list counts 0 there.

    >>> a = [{"function": "f", "file": "m.py", "line": 1, "self_samples": 50, "total_samples": 80}]
    >>> b = [{"function": "f", "file": "m.py", "line": 3, "self_samples": 20, "total_samples": 40}]
    >>> [(r["function"], r["self_delta"], r["total_delta"]) for r in diff(a, b, 100, 100)]
    [('f', -30.0, -40.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PER_REQUESTS = 1000
DEFAULT_LIMIT = 50

Key = tuple[str, str, int]
Stat = dict[str, Any]


def key_of(stat: Stat) -> Key:
    return (str(stat["function"]), str(stat["file"]), int(stat.get("line") or 0))


def match(a: Sequence[Stat], b: Sequence[Stat]) -> list[tuple[Stat | None, Stat | None]]:
    """Pairs (a's stat, b's stat) of the same function; None where one side lacks it."""
    by_key_a = {key_of(stat): stat for stat in a}
    by_key_b = {key_of(stat): stat for stat in b}
    pairs: list[tuple[Stat | None, Stat | None]] = [
        (stat, by_key_b[key]) for key, stat in by_key_a.items() if key in by_key_b
    ]
    left_a = [stat for key, stat in by_key_a.items() if key not in by_key_b]
    left_b = [stat for key, stat in by_key_b.items() if key not in by_key_a]
    moved_a, moved_b = _unique_by_name(left_a), _unique_by_name(left_b)
    moved = {name for name in moved_a if name in moved_b}
    pairs += [(moved_a[name], moved_b[name]) for name in moved]
    pairs += [(stat, None) for stat in left_a if _name_of(stat) not in moved]
    pairs += [(None, stat) for stat in left_b if _name_of(stat) not in moved]
    return pairs


def _name_of(stat: Stat) -> tuple[str, str]:
    return key_of(stat)[:2]


def _unique_by_name(stats: Iterable[Stat]) -> dict[tuple[str, str], Stat]:
    seen: dict[tuple[str, str], list[Stat]] = {}
    for stat in stats:
        seen.setdefault(_name_of(stat), []).append(stat)
    return {name: found[0] for name, found in seen.items() if len(found) == 1}


def share_pct(samples: int, total: int) -> float:
    """`samples` as a percentage of `total`, rounded to 0.01 points (0 when nothing sampled)."""
    return round(100.0 * samples / total, 2) if total > 0 else 0.0


def per_thousand(samples: int, requests: int | None) -> float | None:
    """Samples per 1,000 requests, or None without a request count."""
    if not requests or requests <= 0:
        return None
    return round(PER_REQUESTS * samples / requests, 3)


def _samples(stat: Stat | None, field: str) -> int:
    return int(stat[field]) if stat is not None else 0


def row(
    pair: tuple[Stat | None, Stat | None],
    a_samples: int,
    b_samples: int,
    a_requests: int | None,
    b_requests: int | None,
) -> dict[str, Any]:
    """One function's figures in both captures and their differences (b minus a)."""
    stat_a, stat_b = pair
    shown = stat_b or stat_a
    assert shown is not None
    result: dict[str, Any] = {
        "function": shown["function"],
        "file": shown["file"],
        "line": int(shown.get("line") or 0),
        "in_a": stat_a is not None,
        "in_b": stat_b is not None,
    }
    per_request = bool(a_requests and b_requests)
    for kind in ("self", "total"):
        field = f"{kind}_samples"
        a_count, b_count = _samples(stat_a, field), _samples(stat_b, field)
        a_pct, b_pct = share_pct(a_count, a_samples), share_pct(b_count, b_samples)
        result.update({f"a_{kind}_pct": a_pct, f"b_{kind}_pct": b_pct})
        result[f"{kind}_delta"] = round(b_pct - a_pct, 2)
        a_per_k = per_thousand(a_count, a_requests) if per_request else None
        b_per_k = per_thousand(b_count, b_requests) if per_request else None
        result.update({f"a_{kind}_per_k": a_per_k, f"b_{kind}_per_k": b_per_k})
        result[f"{kind}_per_k_delta"] = (
            round(b_per_k - a_per_k, 3) if a_per_k is not None and b_per_k is not None else None
        )
    return result


def diff(
    a: Sequence[Stat],
    b: Sequence[Stat],
    a_samples: int,
    b_samples: int,
    *,
    a_requests: int | None = None,
    b_requests: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """The `limit` functions whose share changed most between capture a and capture b.

    Ranked by the larger of the changes of their self and total shares (in percentage
    points), then by name; per-request figures are filled only when both captures have a
    request count (None otherwise).
    """
    rows = [row(pair, a_samples, b_samples, a_requests, b_requests) for pair in match(a, b)]
    rows.sort(key=lambda r: (-max(abs(r["self_delta"]), abs(r["total_delta"])), key_of(r)))
    return rows[:limit]


def allocator_growth(
    a: Sequence[Stat], b: Sequence[Stat], *, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """The allocators that hold more bytes at the peak of capture b than of capture a, most
    grown first. Each side is its top allocators by bytes (dicts with `function`, `file`,
    `line`, `bytes`, `count`), matched like functions are; one missing from a side counts 0
    there (it was not among that capture's top allocators).

    >>> a = [{"function": "cache", "file": "m.py", "line": 4, "bytes": 100, "count": 1}]
    >>> b = [{"function": "cache", "file": "m.py", "line": 4, "bytes": 900, "count": 9}]
    >>> [(r["function"], r["bytes_delta"], r["count_delta"]) for r in allocator_growth(a, b)]
    [('cache', 800, 8)]
    """
    rows = []
    for stat_a, stat_b in match(a, b):
        shown = stat_b or stat_a
        assert shown is not None
        a_bytes, b_bytes = _amount(stat_a, "bytes"), _amount(stat_b, "bytes")
        if b_bytes <= a_bytes:
            continue
        a_count, b_count = _amount(stat_a, "count"), _amount(stat_b, "count")
        rows.append(
            {
                "function": shown["function"],
                "file": shown["file"],
                "line": int(shown.get("line") or 0),
                "a_bytes": a_bytes,
                "b_bytes": b_bytes,
                "bytes_delta": b_bytes - a_bytes,
                "a_count": a_count,
                "b_count": b_count,
                "count_delta": b_count - a_count,
                "in_a": stat_a is not None,
            }
        )
    rows.sort(key=lambda r: (-r["bytes_delta"], key_of(r)))
    return rows[:limit]


def _amount(stat: Stat | None, field: str) -> int:
    return int(stat.get(field) or 0) if stat is not None else 0
