"""Per-process statistics of the psycopg connection pool, added up through Redis.

Every process (web, target, Celery worker) reads `ConnectionPool.get_stats()` of each
PostgreSQL alias whose OPTIONS has "pool", and publishes it at most once a second (after a
request, after a task) to one Redis hash of its own, `<prefix>:pool:<host>:<pid>:<role>`,
that expires after TTL_S seconds: a process that dies drops out of the figures by itself.

get_stats(), never pop_stats(): pop_stats() zeroes the pool's counters on every read, so two
readers (this module and anyone debugging) would steal each other's counts. The counters
published are therefore cumulative since the pool opened, and totals are sums over the
processes alive now (a restarted process starts from zero again).

psycopg_pool has no separate timeout counter: `requests_errors` counts requests that got no
connection, i.e. timeouts (DB_POOL_TIMEOUT) and refusals of a full waiting queue.

`figures()` returns, for the Pool page::

    {
      "processes": [                         # sorted by process id string
        {
          "process": "web-1:4242:web",       # host:pid:role
          "host": "web-1", "pid": 4242, "role": "web",   # role: web, target or worker
          "published_at": 1764420000.0,      # epoch seconds
          "age_s": 0.4,                      # seconds since it published
          "aliases": {"default": STATS},
        },
      ],
      "totals": {"default": STATS},          # each field summed over the processes
      "settings": {"min_size": 1, "max_size": 10, "timeout_s": 10.0},  # DB_POOL_*
      "problems": ["..."],                   # empty when all is well
    }

STATS is a dict of ints, every key of FIELDS always present (0 when the pool lacks it):
pool_min, pool_max, pool_size (connections open), pool_available (idle ones),
requests_waiting (clients queued now), requests_num, requests_queued, requests_wait_ms,
requests_errors, usage_ms, returns_bad, connections_num, connections_ms, connections_errors,
connections_lost; plus two derived ones: in_use (pool_size - pool_available) and
requests_wait_ms_mean (requests_wait_ms / requests_queued, 0 when nothing queued).

Problems: "not PostgreSQL: ..." (the embedded SQLite has no pool), "no pool: ..." (an alias
without the "pool" option), "redis unavailable: ..." (then only this process is shown).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from celery import signals as celery_signals
from django.conf import settings
from django.core.cache import caches
from django.core.signals import request_finished
from django.db import connections

from offgridperf import cache

log = logging.getLogger(__name__)

PUBLISH_EVERY_S = 1.0
TTL_S = 5
FIELDS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "usage_ms",
    "returns_bad",
    "connections_num",
    "connections_ms",
    "connections_errors",
    "connections_lost",
)
META_FIELDS = ("host", "pid", "role", "published_at")

_state: dict[str, Any] = {"last_publish": None, "role": None}


def install() -> None:
    """Called once from QueryoptConfig.ready()."""
    request_finished.connect(_after_request, dispatch_uid="queryopt-pool-request")
    celery_signals.task_postrun.connect(_after_task, dispatch_uid="queryopt-pool-task")
    celery_signals.worker_init.connect(_in_worker, dispatch_uid="queryopt-pool-worker")
    celery_signals.worker_process_init.connect(_in_worker, dispatch_uid="queryopt-pool-child")


def _after_request(sender: Any = None, **kwargs: Any) -> None:
    publish()


def _after_task(sender: Any = None, **kwargs: Any) -> None:
    publish()


def _in_worker(sender: Any = None, **kwargs: Any) -> None:
    _state["role"] = "worker"


# --- reading this process's pools -------------------------------------------------------------


def pooled_aliases() -> list[str]:
    """The PostgreSQL aliases with the "pool" option on."""
    return [
        alias
        for alias, conf in settings.DATABASES.items()
        if conf.get("ENGINE", "").endswith("postgresql") and conf.get("OPTIONS", {}).get("pool")
    ]


def local_stats() -> dict[str, dict[str, int]]:
    """{alias: STATS} of this process's pools (a pool not yet opened shows zeros)."""
    return {alias: _normalise(connections[alias].pool.get_stats()) for alias in pooled_aliases()}


def _normalise(raw: dict[str, int]) -> dict[str, int]:
    stats = {name: int(raw.get(name, 0)) for name in FIELDS}
    return _with_derived(stats)


def _with_derived(stats: dict[str, int]) -> dict[str, int]:
    stats["in_use"] = stats["pool_size"] - stats["pool_available"]
    queued = stats["requests_queued"]
    stats["requests_wait_ms_mean"] = stats["requests_wait_ms"] // queued if queued else 0
    return stats


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_role()}"


def _role() -> str:
    return _state["role"] or settings.OFFGRIDPERF_ROLE


# --- publishing -------------------------------------------------------------------------------


def _key_prefix() -> str:
    return f"{caches[cache.CACHE_ALIAS].key_prefix}:pool:"


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection(cache.CACHE_ALIAS)


def publish(*, now: float | None = None, force: bool = False, ttl_s: float = TTL_S) -> bool:
    """Publish this process's pool statistics; False when skipped (published less than a
    second ago, no pool, no Redis) or Redis failed. `now` is a time.monotonic() reading."""
    now = time.monotonic() if now is None else now
    last = _state["last_publish"]
    if not force and last is not None and now - last < PUBLISH_EVERY_S:
        return False
    _state["last_publish"] = now
    if not pooled_aliases() or not cache.uses_redis():
        return False
    mapping = _hash_fields(local_stats())
    key = _key_prefix() + process_id()
    try:
        # Under the cache's circuit breaker: after a request, a down Redis costs nothing.
        with cache.guarded(), _redis().pipeline(transaction=True) as pipe:
            pipe.delete(key)  # in one transaction: readers never see half a hash
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            pipe.execute()
    except cache.Unavailable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "skipped while it is down"
        log.debug("pool statistics not published: Redis unreachable (%s)", cause)
        return False
    return True


def _hash_fields(stats: dict[str, dict[str, int]]) -> dict[str, str | int | float]:
    fields: dict[str, str | int | float] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "role": _role(),
        "published_at": time.time(),
    }
    for alias, values in stats.items():
        fields.update({f"{alias}.{name}": values[name] for name in FIELDS})
    return fields


# --- figures for the page ---------------------------------------------------------------------


def figures() -> dict[str, Any]:
    """Every live process's pool statistics, their totals, the settings and any problem
    (shape in the module docstring)."""
    problems = _problems()
    processes: list[dict[str, Any]] = []
    if pooled_aliases():
        processes = _read_processes(problems)
    return {
        "processes": processes,
        "totals": _totals(processes),
        "settings": {
            "min_size": settings.DB_POOL_MIN,
            "max_size": settings.DB_POOL_MAX,
            "timeout_s": settings.DB_POOL_TIMEOUT,
        },
        "problems": problems,
    }


def _problems() -> list[str]:
    if not settings.DATABASE_IS_POSTGRES:
        return ["not PostgreSQL: the embedded SQLite database has no connection pool"]
    return [
        f"no pool: DATABASES[{alias!r}] has no 'pool' in its OPTIONS"
        for alias, conf in settings.DATABASES.items()
        if conf.get("ENGINE", "").endswith("postgresql") and not conf.get("OPTIONS", {}).get("pool")
    ]


def _read_processes(problems: list[str]) -> list[dict[str, Any]]:
    own = _own_row()
    if not cache.uses_redis():
        problems.append("redis unavailable: REDIS_URL is not set, showing this process only")
        return [own]
    publish(force=True)
    try:
        with cache.guarded():
            rows = _stored_rows()
    except cache.Unavailable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "down"
        problems.append(f"redis unavailable: {cause}, showing this process only")
        return [own]
    return sorted(rows, key=lambda row: row["process"])


def _own_row() -> dict[str, Any]:
    host, pid, role = socket.gethostname(), os.getpid(), _role()
    return {
        "process": f"{host}:{pid}:{role}",
        "host": host,
        "pid": pid,
        "role": role,
        "published_at": time.time(),
        "age_s": 0.0,
        "aliases": local_stats(),
    }


def _stored_rows() -> list[dict[str, Any]]:
    client, prefix = _redis(), _key_prefix()
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    now = time.time()
    return [
        _row(key.decode()[len(prefix) :], stored, now)
        for key, stored in zip(keys, hashes, strict=True)
        if stored  # expired between SCAN and HGETALL
    ]


def _row(process: str, stored: dict[bytes, bytes], now: float) -> dict[str, Any]:
    fields = {k.decode(): v.decode() for k, v in stored.items()}
    aliases: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        alias, dot, stat = name.rpartition(".")
        if dot and stat in FIELDS:
            aliases.setdefault(alias, dict.fromkeys(FIELDS, 0))[stat] = int(value)
    published_at = float(fields.get("published_at", 0.0))
    return {
        "process": process,
        "host": fields.get("host", ""),
        "pid": int(fields.get("pid", 0)),
        "role": fields.get("role", ""),
        "published_at": published_at,
        "age_s": round(max(0.0, now - published_at), 3),
        "aliases": {alias: _with_derived(stats) for alias, stats in aliases.items()},
    }


def _totals(processes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for row in processes:
        for alias, stats in row["aliases"].items():
            summed = totals.setdefault(alias, dict.fromkeys(FIELDS, 0))
            for name in FIELDS:
                summed[name] += stats[name]
    return {alias: _with_derived(stats) for alias, stats in totals.items()}
