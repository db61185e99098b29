"""Connection-pool statistics: published per process to Redis, added up for the Pool page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from queryopt import pool
from tests.conftest import ROOT

# The other process: publishes its pool once, with a short TTL, says so, and waits to be told
# to exit (a closed stdin), so the test reads the figures while it is alive.
CHILD = """
import sys
import django
django.setup()
from queryopt import pool
assert pool.publish(ttl_s=3.0)
print(pool.process_id(), flush=True)
sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def clean_pool_keys(db: Any) -> Iterator[None]:
    def clear() -> None:
        client = pool._redis()
        for key in client.scan_iter(match=pool._key_prefix() + "*"):
            client.delete(key)
        pool._state["last_publish"] = None

    clear()
    with connection.cursor() as cursor:  # the pool has lent a connection by now
        cursor.execute("SELECT 1")
    yield
    clear()


def own_row(figures: dict[str, Any]) -> dict[str, Any]:
    [row] = [r for r in figures["processes"] if r["process"] == pool.process_id()]
    return row


def test_it_shows_this_process_with_its_pool_after_a_publish() -> None:
    assert pool.publish()

    figures = pool.figures()

    row = own_row(figures)
    stats = row["aliases"]["default"]
    assert (row["pid"], row["role"]) == (os.getpid(), "web")
    assert stats["pool_max"] == settings.DB_POOL_MAX
    assert stats["pool_size"] >= 1
    assert stats["in_use"] == stats["pool_size"] - stats["pool_available"]
    assert figures["totals"]["default"]["pool_max"] == settings.DB_POOL_MAX
    assert figures["settings"] == {
        "min_size": settings.DB_POOL_MIN,
        "max_size": settings.DB_POOL_MAX,
        "timeout_s": settings.DB_POOL_TIMEOUT,
    }
    assert figures["problems"] == []


def test_it_skips_a_second_publish_within_a_second() -> None:
    assert pool.publish(now=1000.0)
    assert not pool.publish(now=1000.5)
    assert not pool.publish(now=1000.99)
    assert pool.publish(now=1001.0)


def test_it_publishes_with_a_ttl_so_a_dead_process_disappears() -> None:
    assert pool.publish()
    ttl_ms = pool._redis().pttl(pool._key_prefix() + pool.process_id())
    assert 0 < ttl_ms <= pool.TTL_S * 1000


def test_it_publishes_after_a_request(client: Any) -> None:
    client.get("/accounts/login/")

    assert pool._redis().exists(pool._key_prefix() + pool.process_id())


def test_it_adds_up_another_process_until_its_entry_expires() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "offgridperf.settings"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        other = child.stdout.readline().strip()
        figures = pool.figures()
    finally:
        child.communicate(timeout=60)
    assert child.returncode == 0

    assert {row["process"] for row in figures["processes"]} == {other, pool.process_id()}
    assert figures["totals"]["default"]["pool_max"] == 2 * settings.DB_POOL_MAX

    key = pool._key_prefix() + other
    deadline = time.monotonic() + 10
    while pool._redis().exists(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [row["process"] for row in pool.figures()["processes"]] == [pool.process_id()]


def test_it_says_when_the_database_is_not_postgresql(settings: Any) -> None:
    settings.DATABASE_IS_POSTGRES = False

    assert pool.figures()["problems"] == [
        "not PostgreSQL: the embedded SQLite database has no connection pool"
    ]


def test_it_shows_this_process_only_without_redis(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    figures = pool.figures()

    assert [row["process"] for row in figures["processes"]] == [pool.process_id()]
    assert figures["processes"][0]["aliases"]["default"]["pool_size"] >= 1
    assert figures["problems"] == [
        "redis unavailable: REDIS_URL is not set, showing this process only"
    ]
