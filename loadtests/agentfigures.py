"""The target agent's figures of a run: collected from Redis into AgentSecond rows (one per
step and second, summed over the target's processes) and summarised per step into the run's
`steps_summary`, where summary.json, the CLI's --json and the pages read them.

The only module here that touches histograms for the agent: the agent sends sparse
{HdrHistogram counts index: count} maps in the engine's layout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from offgridperf_agent.publish import run_key

from loadtests.engine.results import ms
from loadtests.models import AgentSecond, LoadTestRun
from stats.histogram import Histogram

log = logging.getLogger(__name__)

# Messages taken from Redis per round trip.
BATCH = 500
# The costliest statements a step names.
TOP_SQL = 3
# Keys a step's summary gains from the agent (summary.json and the CLI's --json).
STEP_KEYS = (
    "server_p50_ms", "server_p95_ms", "server_ms_mean", "cpu_ms_mean", "db_ms_mean",
    "queries_per_request", "queries_max", "cache_calls_per_request", "agent_requests",
    "n_plus_one", "top_sql",
)  # fmt: skip


def _client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.OFFGRIDPERF_AGENT_REDIS_URL, socket_timeout=5, socket_connect_timeout=2
    )


def collect(run_id: int) -> int:
    """Move the run's published seconds from Redis into AgentSecond rows and refresh the
    run's per-step figures; returns how many messages were taken."""
    if not settings.OFFGRIDPERF_AGENT_REDIS_URL:
        return 0
    client, key, taken = _client(), run_key(run_id), 0
    while True:
        pipe = client.pipeline()
        pipe.lrange(key, 0, BATCH - 1)
        pipe.ltrim(key, BATCH, -1)
        raw, _ = pipe.execute()
        if not raw:
            break
        try:
            store(run_id, [json.loads(item) for item in raw])
        except IntegrityError:
            if LoadTestRun.objects.filter(pk=run_id).exists():
                raise
            # Deleted while its figures were on their way: nothing left to add them to.
            client.delete(key)
            log.warning("run %s was deleted: the agent's figures for it are dropped", run_id)
            return taken
        taken += len(raw)
    if taken:
        summarise(run_id)
    return taken


def store(run_id: int, messages: Iterable[dict[str, Any]]) -> None:
    """Add messages to their (run, step, second) rows; several processes send one each."""
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for message in messages:
        grouped.setdefault((str(message["step"])[:200], int(message["second"])), []).append(message)
    with transaction.atomic():
        for (step, second), group in grouped.items():
            row, _ = AgentSecond.objects.select_for_update().get_or_create(
                run_id=run_id, step=step, second=datetime.fromtimestamp(second, tz=UTC)
            )
            for message in group:
                _add(row, message)
            row.save()


def _add(row: AgentSecond, message: dict[str, Any]) -> None:
    row.requests += int(message["requests"])
    row.server_ms += message["server_us"] / 1000
    row.cpu_ms += message["cpu_us"] / 1000
    row.db_ms += message["db_us"] / 1000
    row.queries += int(message["queries"])
    row.queries_max = max(row.queries_max, int(message["queries_max"]))
    row.cache_calls += int(message["cache_calls"])
    row.cache_ms += message["cache_us"] / 1000
    row.server_counts = _summed(row.server_counts, message["server_hist"])
    row.db_counts = _summed(row.db_counts, message["db_hist"])
    row.statuses = _summed(row.statuses, message["statuses"])
    row.views = _summed(row.views, message["views"])
    row.top_sql = _merged_sql(row.top_sql, message["sql"])
    row.n_plus_one = _merged_groups(row.n_plus_one, message["n_plus_one"])


def _summed(mine: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    total = dict(mine)
    for name, count in more.items():
        total[name] = total.get(name, 0) + int(count)
    return total


def _merged_sql(mine: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_fp = {item["fingerprint"]: dict(item) for item in mine}
    for item in more:
        entry = by_fp.setdefault(item["fingerprint"], {**item, "count": 0, "total_us": 0})
        entry["count"] += item["count"]
        entry["total_us"] += item["total_us"]
    return sorted(by_fp.values(), key=lambda item: item["total_us"], reverse=True)[:10]


def _merged_groups(mine: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(g["fingerprint"], g["view"], g["frame"]): dict(g) for g in mine}
    for group in more:
        entry = by_key.setdefault(
            (group["fingerprint"], group["view"], group["frame"]), {**group, "requests": 0}
        )
        entry["requests"] += group["requests"]
        entry["count"] = max(entry["count"], group["count"])
    return list(by_key.values())


def summarise(run_id: int) -> None:
    """Write each step's agent figures into the run's steps_summary."""
    with transaction.atomic():
        run = LoadTestRun.objects.select_for_update().get(pk=run_id)
        steps = with_step_figures(run_id, dict(run.steps_summary or {}))
        LoadTestRun.objects.filter(pk=run_id).update(steps_summary=steps)


def histogram_of_counts(sparse_maps: Iterable[dict[str, int]]) -> Histogram:
    """One histogram of the agent's sparse counts maps (the engine's layout)."""
    histogram = Histogram()
    for sparse in sparse_maps:
        for index, count in sparse.items():
            histogram.counts[int(index)] += int(count)
    return histogram


def step_figures(rows: Iterable[AgentSecond]) -> dict[str, dict[str, Any]]:
    """Per step: server p50/p95, means per request, queries, N+1 groups and the top SQL."""
    by_step: dict[str, list[AgentSecond]] = {}
    for row in rows:
        by_step.setdefault(row.step, []).append(row)
    return {step: _one_step(seconds) for step, seconds in by_step.items()}


def _one_step(seconds: list[AgentSecond]) -> dict[str, Any]:
    requests = sum(row.requests for row in seconds) or 1
    server = histogram_of_counts(row.server_counts for row in seconds)
    groups: list[dict[str, Any]] = []
    sql: list[dict[str, Any]] = []
    for row in seconds:
        groups = _merged_groups(groups, row.n_plus_one)
        sql = _merged_sql(sql, row.top_sql)
    server_ms = sum(row.server_ms for row in seconds)
    return {
        "server_p50_ms": ms(server.value_at_percentile(50)),
        "server_p95_ms": ms(server.value_at_percentile(95)),
        "server_ms_mean": round(server_ms / requests, 3),
        "cpu_ms_mean": round(sum(row.cpu_ms for row in seconds) / requests, 3),
        "db_ms_mean": round(sum(row.db_ms for row in seconds) / requests, 3),
        "queries_per_request": round(sum(row.queries for row in seconds) / requests, 2),
        "queries_max": max(row.queries_max for row in seconds),
        "cache_calls_per_request": round(sum(r.cache_calls for r in seconds) / requests, 2),
        "agent_requests": sum(row.requests for row in seconds),
        "n_plus_one": [
            {key: group[key] for key in ("fingerprint", "view", "frame", "count")}
            for group in sorted(groups, key=lambda g: g["count"], reverse=True)
        ],
        "top_sql": [
            {
                "fingerprint": item["fingerprint"],
                "sql": item["sql"],
                "count": item["count"],
                "total_ms": ms(item["total_us"]),
            }
            for item in sql[:TOP_SQL]
        ],  # fmt: skip
    }


# The agent publishes each finished second within a second: this long after a run's last
# request, every process has published it.
SETTLE_S = 2.5


def settle(run_id: int, *, wait_s: float = SETTLE_S) -> int:
    """At a run's end, before it is finalised: when the target's agent published for it, wait
    `wait_s` for its last seconds and collect them. A run whose target runs no agent costs one
    query and one Redis call, and no wait."""
    _next_collect.pop(run_id, None)
    if not settings.OFFGRIDPERF_AGENT_REDIS_URL:
        return 0
    try:
        collected_before = AgentSecond.objects.filter(run_id=run_id).exists()
        if not (collected_before or _client().exists(run_key(run_id))):
            return 0
        time.sleep(wait_s)
        return collect(run_id)
    except redis.RedisError as exc:
        log.warning("run %s: the agent's figures could not be collected: %s", run_id, exc)
        return 0


def store_at_end(run_id: int, *, wait_s: float = SETTLE_S) -> None:
    """For a run that ended without being finalised (reaped, interrupted, ended as error):
    collect the target's last seconds and write every step's figures into its steps_summary,
    as finalise does for a run that ran to its end. Also when nothing new was published: the
    summary written while the run went is up to COLLECT_EVERY_S old."""
    if settle(run_id, wait_s=wait_s) == 0 and AgentSecond.objects.filter(run_id=run_id).exists():
        summarise(run_id)


def with_step_figures(run_id: int, steps: Any) -> Any:
    """The run's client-side step figures with the agent's added (finalise writes this)."""
    figures = step_figures(AgentSecond.objects.filter(run_id=run_id))
    if not figures or not isinstance(steps, dict):
        return steps
    merged = dict(steps)
    for step, values in figures.items():
        merged[step] = {**(merged.get(step) or {}), **values}
    return merged


# While a run goes, its figures are collected this often, so that Redis holds only the
# last few seconds of a long run.
COLLECT_EVERY_S = 10.0
_next_collect: dict[int, float] = {}


def collect_while_running(run_id: int) -> None:
    """Called each second of a run on the worker that stores it: collect now and then."""
    now = time.monotonic()
    due = _next_collect.setdefault(run_id, now + COLLECT_EVERY_S)
    if now < due or not settings.OFFGRIDPERF_AGENT_REDIS_URL:
        return
    _next_collect[run_id] = now + COLLECT_EVERY_S
    try:
        collect(run_id)
    except redis.RedisError as exc:
        log.warning("run %s: the agent's figures could not be collected: %s", run_id, exc)
