from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import override_settings
from django_redis import get_redis_connection

from emissions.cache import ACTIVITY, BATCH, EMISSIONS, QUERY
from offgridperf import cache
from offgridperf.cache import metrics as cache_metrics
from offgridperf.cache.metrics import percentile_ms
from tests.cache_redis import PrivateRedis, private_redis_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_cache() -> Iterator[None]:
    cache.clear_all()
    yield
    cache.reset_process_state()


@pytest.fixture
def private_redis(settings: Any) -> Iterator[PrivateRedis]:
    with private_redis_server() as server:
        settings.CACHES = server.caches()
        cache.clear_all()
        yield server


def redis_ttl_ms(strategy: cache.Strategy, key: str) -> int:
    full_key = cache._backend().make_key(f"{strategy.prefix}:{strategy.generation()}:{key}")
    return int(get_redis_connection("default").pttl(full_key))


def test_it_misses_then_hits() -> None:
    assert BATCH.get("detail:1") is None
    assert BATCH.set("detail:1", {"status": "done"})
    assert BATCH.get("detail:1") == {"status": "done"}
    figures = cache.figures()["batch"]
    assert (figures.counters["hits"], figures.counters["misses"]) == (1, 1)
    assert figures.hit_rate == 0.5


def test_it_caches_none_as_a_value() -> None:
    calls = []
    for _ in range(3):
        QUERY.get_or_compute("empty", lambda: calls.append(1))
    assert len(calls) == 1


def test_it_keeps_strategies_apart() -> None:
    BATCH.set("same", "batch value")
    QUERY.set("same", "query value")
    assert BATCH.get("same") == "batch value"
    assert QUERY.get("same") == "query value"


def test_it_expires_a_value_after_its_ttl() -> None:
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        QUERY.set("short", "v", ttl=2)
        assert QUERY.get("short") == "v"
        traveller.shift(2.5)
        assert QUERY.get("short") is None
    # Redis keeps it for a grace period (to serve it stale during a recompute), then drops it.
    assert 0 < redis_ttl_ms(QUERY, "short") <= 4000


@override_settings(CACHE_TTL_BATCH=3600, CACHE_TTL_QUERY=7)
def test_it_gives_each_strategy_its_ttl_from_settings() -> None:
    BATCH.set("k", 1)
    QUERY.set("k", 1)
    assert 3600_000 < redis_ttl_ms(BATCH, "k") <= (3600 + 60) * 1000
    assert 7_000 < redis_ttl_ms(QUERY, "k") <= 14_000


def test_it_invalidates_by_key() -> None:
    ACTIVITY.set("1:1:50", "page")
    assert ACTIVITY.delete("1:1:50")
    assert ACTIVITY.get("1:1:50") is None


def test_it_invalidates_by_prefix_and_spares_other_keys() -> None:
    ACTIVITY.set_many({f"7:{page}:50": page for page in range(1, 2001)})
    ACTIVITY.set("70:1:50", "other batch")
    EMISSIONS.set("7:scope", "other strategy")
    assert ACTIVITY.invalidate_prefix("7:") == 2000
    assert ACTIVITY.get("7:1:50") is None
    assert ACTIVITY.get("70:1:50") == "other batch"
    assert EMISSIONS.get("7:scope") == "other strategy"


def test_it_escapes_glob_characters_in_a_prefix() -> None:
    QUERY.set("a*b", 1)
    QUERY.set("aXb", 2)
    assert QUERY.invalidate_prefix("a*") == 1
    assert QUERY.get("aXb") == 2


def test_it_invalidates_a_whole_strategy_by_version_bump() -> None:
    EMISSIONS.set("all:scope", "old")
    BATCH.set("detail:1", "kept")
    before = EMISSIONS.generation()
    assert EMISSIONS.invalidate_all() == before + 1
    assert EMISSIONS.get("all:scope") is None
    assert BATCH.get("detail:1") == "kept"
    EMISSIONS.set("all:scope", "new")
    cache.reset_process_state()  # another process: it reads the generation from Redis
    assert EMISSIONS.get("all:scope") == "new"


def test_it_gets_and_sets_many_in_one_round_trip(private_redis: PrivateRedis) -> None:
    values = {f"k{n}": n for n in range(100)}
    QUERY.generation()  # memoised from here on
    sets_before = private_redis.command_calls("set")
    assert QUERY.set_many(values)
    mgets_before = private_redis.command_calls("mget")
    gets_before = private_redis.command_calls("get")
    found = QUERY.get_many([*values, "absent"])
    assert found == values
    assert private_redis.command_calls("mget") == mgets_before + 1
    assert private_redis.command_calls("get") == gets_before
    assert private_redis.command_calls("set") == sets_before + 100  # pipelined: one round trip
    figures = cache.figures()["query"]
    assert (figures.counters["hits"], figures.counters["misses"]) == (100, 1)


def test_it_computes_once_for_concurrent_callers() -> None:
    computed: list[int] = []
    results: list[Any] = []
    start = threading.Barrier(8)

    def compute() -> dict[str, int]:
        computed.append(1)
        time.sleep(0.3)
        return {"total": 42}

    def caller() -> None:
        start.wait()
        results.append(EMISSIONS.get_or_compute("all:scope", compute))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == 1
    assert results == [{"total": 42}] * 8
    assert cache.figures()["emissions"].counters["computes"] == 1


def test_it_serves_the_stale_value_while_one_caller_recomputes() -> None:
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        EMISSIONS.set("all:site", "old", ttl=10)
        traveller.shift(11)  # stale, still within the grace period
        refreshing = threading.Event()
        release = threading.Event()

        def slow_compute() -> str:
            refreshing.set()
            release.wait(5)
            return "new"

        refresher = threading.Thread(
            target=lambda: EMISSIONS.get_or_compute("all:site", slow_compute)
        )
        refresher.start()
        assert refreshing.wait(5)
        assert EMISSIONS.get_or_compute("all:site", lambda: "not me") == "old"
        release.set()
        refresher.join()
        assert EMISSIONS.get_or_compute("all:site", lambda: "not me") == "new"
    assert cache.figures()["emissions"].counters["stale"] == 1


def test_it_computes_itself_when_the_computing_caller_takes_too_long() -> None:
    BATCH._lock(BATCH._key("detail:9", BATCH.generation()))  # held elsewhere
    started = time.monotonic()
    assert BATCH.get_or_compute("detail:9", lambda: "mine", wait_s=0.2) == "mine"
    assert time.monotonic() - started < 2


COUNTING_SCRIPT = """
import django
django.setup()
from emissions.cache import QUERY
from offgridperf import cache
QUERY.set("shared", 1)
for _ in range(50):
    QUERY.get("shared")
QUERY.get("absent")
cache.flush_metrics()
"""


def test_metrics_add_up_across_two_processes() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "offgridperf.settings"}
    procs = [
        subprocess.Popen([sys.executable, "-c", COUNTING_SCRIPT], cwd=ROOT, env=env)
        for _ in range(2)
    ]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    figures = cache.figures()["query"]
    assert figures.counters["hits"] == 100
    assert figures.counters["misses"] == 2
    assert figures.counters["sets"] == 2
    assert figures.operations == 2 * 52  # every get and set timed into the histogram
    assert figures.latency_ms(0.5) is not None


def test_it_resets_metrics_on_demand() -> None:
    BATCH.get("x")
    cache.reset_metrics()
    assert cache.figures()["batch"].lookups == 0


def test_it_counts_live_keys_per_strategy() -> None:
    BATCH.set_many({"a": 1, "b": 2})
    QUERY.set("q", 1)
    counts = cache.key_counts()
    assert counts == {"batch": 2, "activity": 0, "emissions": 0, "query": 1}
    BATCH.invalidate_all()
    assert cache.key_counts()["batch"] == 0


def test_percentiles_come_from_histogram_slots_by_the_one_rule() -> None:
    from offgridperf.cache.metrics import latency_bucket

    buckets: dict[int, int] = {}
    for micros in [100] * 98 + [5000, 5000]:
        index = latency_bucket(micros / 1_000_000)
        buckets[index] = buckets.get(index, 0) + 1
    assert percentile_ms(buckets, 0.5) == pytest.approx(0.1, rel=0.1)
    assert percentile_ms(buckets, 0.99) == pytest.approx(5.0, rel=0.1)
    assert percentile_ms({}, 0.5) is None


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_it_works_on_local_memory() -> None:
    cache.reset_process_state()
    assert not cache.uses_redis()
    BATCH.set_many({"detail:1": "a", "detail:2": "b", "ref:x": 1})
    assert BATCH.get_many(["detail:1", "detail:2"]) == {"detail:1": "a", "detail:2": "b"}
    assert BATCH.invalidate_prefix("detail:") == 2
    assert BATCH.get("ref:x") == 1
    BATCH.invalidate_all()
    assert BATCH.get("ref:x") is None
    assert BATCH.get_or_compute("k", lambda: 5) == 5
    figures = cache.figures()["batch"]
    assert figures.counters["hits"] == 3
    assert cache.key_counts()["batch"] == 1


@override_settings(CACHE_ENABLED=False)
def test_it_goes_straight_to_the_source_when_disabled() -> None:
    calls = []
    for _ in range(3):
        ACTIVITY.get_or_compute("k", lambda: calls.append(1))
    assert len(calls) == 3
    assert not ACTIVITY.set("k", 1)


def test_it_serves_from_the_source_while_redis_is_down_and_recovers(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(cache, "BACKOFF_S", 0.2)
    QUERY.set("k", "cached")
    private_redis.stop()
    with caplog.at_level("WARNING", logger="offgridperf.cache"):
        for _ in range(3):
            assert QUERY.get("k") is None
            assert QUERY.get_or_compute("k", lambda: "source") == "source"
            assert not QUERY.set("k", "x")
            time.sleep(0.25)  # past the back-off: every round really tries Redis again
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # logged at most once a minute
    assert not cache.state().reachable
    private_redis.start()
    time.sleep(0.25)
    assert QUERY.get_or_compute("k", lambda: "fresh") == "fresh"
    assert QUERY.get("k") == "fresh"
    assert cache.state().reachable
    figures = cache.figures()["query"]
    # Counted in-process, flushed once Redis was back. How many rounds met the probe rather
    # than a bypass depends on when the probe ran, so at least one of each.
    assert figures.counters["errors"] >= 1
    assert figures.counters["bypassed"] >= 1


def test_an_invalidation_missed_during_an_outage_is_made_good_on_return(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "BACKOFF_S", 0.1)
    BATCH.set("detail:1", "before the write")
    BATCH.set("ref:r", 1)
    private_redis.pause(1.0)  # unresponsive, but keeps its data
    assert not BATCH.delete("detail:1")  # times out: missed
    time.sleep(1.1)
    assert BATCH.get("detail:1") is None  # the whole strategy was bumped on return
    assert BATCH.get("ref:r") is None
    assert BATCH.get_or_compute("detail:1", lambda: "after") == "after"


def test_counts_a_failed_flush_gave_back_reach_redis_without_another_operation(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's last counts (the end of a load test) are flushed by a timer; when that flush
    meets Redis down, or the circuit open, it tries again until they land."""
    monkeypatch.setattr(cache, "BACKOFF_S", 0.1)
    # Redis goes first, so that no flush (this operation's, or a timer a test before left
    # running) can land the counts before it is away.
    private_redis.stop()
    for _ in range(5):
        QUERY.get("k")  # each an error or, the circuit open, a bypass
    time.sleep(1.5)  # the timer's flush, within 1 s, fails: the counts are given back
    private_redis.start()

    # Redis is back, and this process makes no further cache operation: a retry lands the counts
    # (the first after the restart may meet the pool's dead connection, the next one a new one).
    # Read from Redis itself: cache.figures() would flush this process's counts first.
    def stored() -> dict[str, int]:
        key = {"query": cache._metrics_key("query")}
        try:
            return cache_metrics.read_from_redis(cache._redis_client(), key)["query"]
        except cache.REDIS_ERRORS:  # a dead pooled connection from before the restart
            return {}

    def landed() -> int:
        counts = stored()
        return counts.get("errors", 0) + counts.get("bypassed", 0)

    deadline = time.monotonic() + 10
    while landed() < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert landed() == 5, f"the counts still wait for another operation: {stored()}"
    assert cache._buffer.peek("query") == {}
