"""What the run and compare pages show of the target agent's figures (offgridperf_agent):
per step server time, database share, queries, N+1 groups, top SQL, and where a request's
time went (outside the server, Python, database). Pure: it reads a run's steps_summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtests.agentfigures import STEP_KEYS

DOCS_PATH = "docs/agent.md"
INSTALL_LINE = (
    "No figures from inside the target: install the offgridperf agent in it "
    "(pip install, two settings lines)."
)
# A step's queries per request grew by at least this many: the compare verdict names it.
QUERY_GROWTH_NAMED = 2


def without_agent_figures(steps_summary: Any) -> Any:
    """The run's step figures without the agent's keys (the client-side table)."""
    if not isinstance(steps_summary, dict):
        return steps_summary
    return {
        name: {k: v for k, v in stats.items() if k not in STEP_KEYS}
        if isinstance(stats, dict) else stats
        for name, stats in steps_summary.items()
    }  # fmt: skip


def has_agent_figures(steps_summary: Any) -> bool:
    return isinstance(steps_summary, dict) and any(
        isinstance(stats, dict) and "server_p50_ms" in stats for stats in steps_summary.values()
    )


def _share(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole > 0 else 0.0


def time_split(stats: dict[str, Any]) -> dict[str, float]:
    """Where a mean request's time went (ms): outside the server (client latency minus server
    time: network and queueing), Python (server minus database) and database."""
    server = float(stats.get("server_ms_mean") or 0.0)
    db = min(float(stats.get("db_ms_mean") or 0.0), server)
    client = float(stats.get("mean_ms") or 0.0)
    return {"outside_ms": round(max(client - server, 0.0), 3),
            "python_ms": round(server - db, 3), "db_ms": round(db, 3)}  # fmt: skip


def step_rows(steps_summary: Any, order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per step the agent measured, in the definition's step order."""
    if not has_agent_figures(steps_summary):
        return []
    position = {name: i for i, name in enumerate(order)}
    rows = []
    for name, stats in sorted(
        steps_summary.items(), key=lambda item: position.get(item[0], len(position))
    ):
        if not isinstance(stats, dict) or "server_p50_ms" not in stats:
            continue
        split = time_split(stats)
        total = sum(split.values())
        bar, x = [], 0.0
        for part in ("outside", "python", "db"):
            width = _share(split[f"{part}_ms"], total)
            bar.append({"part": part, "x": x, "width": width, "ms": split[f"{part}_ms"]})
            x += width
        rows.append({
            "step": name,
            "server_p50_ms": stats["server_p50_ms"],
            "server_p95_ms": stats["server_p95_ms"],
            "db_share_pct": _share(split["db_ms"], split["python_ms"] + split["db_ms"]),
            "queries_per_request": stats["queries_per_request"],
            "queries_max": stats.get("queries_max"),
            "cache_calls_per_request": stats.get("cache_calls_per_request"),
            "n_plus_one": stats.get("n_plus_one") or [],
            "top_sql": stats.get("top_sql") or [],
            "bar": bar,
        })  # fmt: skip
    return rows


# Compare: per-step deltas of what the agent measured.
DELTA_KEYS = (
    ("server_p95_ms", "server p95 (ms)"),
    ("db_ms_mean", "database (ms/request)"),
    ("queries_per_request", "queries/request"),
)


def step_deltas(steps_a: Any, steps_b: Any) -> list[dict[str, Any]]:
    """Per step both runs measured with the agent: a's and b's values and b - a."""
    if not (has_agent_figures(steps_a) and has_agent_figures(steps_b)):
        return []
    rows = []
    for name, a in steps_a.items():
        b = steps_b.get(name)
        if not (isinstance(a, dict) and isinstance(b, dict) and "server_p50_ms" in a
                and "server_p50_ms" in b):  # fmt: skip
            continue
        cells = [{"label": label, "a": a[key], "b": b[key], "delta": round(b[key] - a[key], 3)}
                 for key, label in DELTA_KEYS]  # fmt: skip
        rows.append({"step": name, "cells": cells, "cause": regression_cause(a, b)})
    return rows


def regression_cause(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The cause the agent can see of b being slower than a, in one line, or ""."""
    growth = float(b["queries_per_request"]) - float(a["queries_per_request"])
    if growth >= QUERY_GROWTH_NAMED:
        known = {(g["fingerprint"], g["view"]) for g in a.get("n_plus_one") or []}
        new = [g for g in b.get("n_plus_one") or [] if (g["fingerprint"], g["view"]) not in known]
        where = f": N+1 in {new[0]['view']}" if new else ""
        return f"+{growth:g} queries per request{where}"
    db = float(b["db_ms_mean"]) - float(a["db_ms_mean"])
    python = (float(b["server_ms_mean"]) - float(b["db_ms_mean"])) - (
        float(a["server_ms_mean"]) - float(a["db_ms_mean"])
    )
    if max(db, python) <= 0:
        return ""
    if db >= python:
        return f"+{db:.1f} ms of database time per request"
    return f"+{python:.1f} ms of Python time per request"


def causes_by_step(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["step"]: row["cause"] for row in rows if row["cause"]}
