"""Talking to the in-process agents (offgridperf_agent.process) through Redis: which processes
run one, their GC figures, and tracemalloc start/stop requests for a memory capture."""

from __future__ import annotations

import functools
import json
from typing import Any

import redis
from django.conf import settings
from offgridperf_agent import process as agent


class AgentUnavailable(Exception):
    """No agent answered; the message says why."""


def _client() -> redis.Redis:
    if not settings.REDIS_URL:
        raise AgentUnavailable("REDIS_URL is not set, so no agent can be reached")
    return _client_for(settings.REDIS_URL)


@functools.cache
def _client_for(url: str) -> redis.Redis:
    # One client (and connection pool) per URL and process: the monitor asks every few
    # seconds, and a new connection each time cost it more than its readings.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def figures(pid: int) -> dict[str, Any] | None:
    """The latest figures the agent of `pid` published, or None when it runs none."""
    try:
        raw = _client().get(agent.process_key(pid))
    except (AgentUnavailable, redis.RedisError):
        return None
    return json.loads(raw) if raw else None


def figures_of(pids: list[int]) -> list[dict[str, Any]]:
    """The latest figures of those of `pids` whose agent published them, in one round trip;
    [] without Redis (the monitor reads every target this way at every reading)."""
    if not pids:
        return []
    try:
        values = _client().mget([agent.process_key(pid) for pid in pids])
    except (AgentUnavailable, redis.RedisError):
        return []
    return [json.loads(value) for value in values if value]


def processes() -> list[dict[str, Any]]:
    """Every process whose agent published in the last few seconds."""
    try:
        client = _client()
        keys = sorted(client.scan_iter(match=agent.process_key(0).replace(":0", ":*")))
        values = client.mget(keys) if keys else []
    except (AgentUnavailable, redis.RedisError):
        return []
    return [json.loads(value) for value in values if value]


def request(pid: int, capture_id: int, op: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """Send `op` to the agent of `pid` and wait for its answer."""
    client = _client()
    client.rpush(agent.commands_key(pid), json.dumps({"op": op, "capture": capture_id}))
    client.expire(agent.commands_key(pid), 60)
    item = client.blpop([agent.result_key(pid, capture_id)], timeout=timeout_s)
    if item is None:
        raise AgentUnavailable(f"the agent of process {pid} did not answer within {timeout_s:g} s")
    return json.loads(item[1])
