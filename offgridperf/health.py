"""Reachability probes for the services the product depends on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from psycopg_pool import PoolTimeout


@dataclass(frozen=True)
class Probe:
    ok: bool
    ms: float
    error: str = ""

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"ok": self.ok, "ms": round(self.ms, 2)}
        if self.error:
            data["error"] = self.error
        return data


def _timed(check: Callable[[], None]) -> Probe:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the class names why
        return Probe(False, (time.perf_counter() - started) * 1000, type(exc).__name__)
    return Probe(True, (time.perf_counter() - started) * 1000)


# How long a probe waits for a database connection. Bounded well below DB_POOL_TIMEOUT: with
# the database gone, the pool would hold each caller that long, and probes (load balancers,
# Kubernetes, /healthz's own callers) give up after a second or two.
DATABASE_PROBE_TIMEOUT_S = 1.0
# When every pooled connection is busy, the probe connects on its own for at most this long
# (psycopg's least connect_timeout).
DATABASE_CONNECT_TIMEOUT_S = 2


def _database() -> None:
    pool = getattr(connection, "pool", None) if settings.DATABASE_IS_POSTGRES else None
    if pool is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return
    # A connection of its own from the pool, so that a broken one of this thread's is not
    # what the probe reports. Django opens its pool at the first query (open() is idempotent);
    # the probe may come first.
    pool.open()
    try:
        with pool.connection(timeout=DATABASE_PROBE_TIMEOUT_S) as conn:
            conn.execute("SELECT 1").fetchone()
    except PoolTimeout:
        # Every pooled connection is in use by requests: the process is busy, which is not
        # the database being down (a load balancer would pull a busy instance for it). Ask
        # the server itself, on a connection of the probe's own.
        options = {**pool.kwargs, "connect_timeout": DATABASE_CONNECT_TIMEOUT_S}
        with psycopg.connect(pool.conninfo, **options) as conn:
            conn.execute("SELECT 1").fetchone()


def database_reachable() -> bool:
    return _timed(_database).ok


def _cache() -> None:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just stored")
    cache.delete(key)


def _broker() -> None:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=2,
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


PROBES: dict[str, Callable[[], None]] = {
    "database": _database,
    "cache": _cache,
    "broker": _broker,
}


def check_all() -> dict[str, Probe]:
    return {name: _timed(check) for name, check in PROBES.items()}
