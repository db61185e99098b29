"""What one process does to the shared cache, every other process sees: the next read after
an invalidation, and counts in the figures without waiting for a further operation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emissions.cache import BATCH
from offgridperf import cache
from offgridperf.cache import metrics as cache_metrics
from tests.processes import wait_for


@pytest.fixture(autouse=True)
def clean_cache() -> Iterator[None]:
    cache.clear_all()
    yield
    cache.reset_process_state()


def bumped_elsewhere(strategy: cache.Strategy) -> None:
    """What invalidate_all does in another process: this one's memo is left as it was."""
    cache._increment(strategy.generation_key)


def test_the_next_read_after_another_process_invalidates_a_strategy_misses() -> None:
    BATCH.set("detail:1", "calculating")
    assert BATCH.get("detail:1") == "calculating"  # the generation is memoised from here on
    bumped_elsewhere(BATCH)
    assert BATCH.get("detail:1") is None
    assert BATCH.get_many(["detail:1"]) == {}
    assert BATCH.get_or_compute("detail:1", lambda: "done") == "done"
    assert BATCH.get("detail:1") == "done"


def test_a_delete_after_another_process_invalidates_reaches_the_new_generation() -> None:
    BATCH.get("detail:2")  # this process memoises the generation
    stale_memo = cache._generations[BATCH.name]
    bumped_elsewhere(BATCH)
    cache._generations.clear()
    BATCH.set("detail:2", "calculating")  # as another process caches under the new one
    cache._generations[BATCH.name] = stale_memo
    assert BATCH.delete("detail:2")  # the source changed: this process invalidates the key
    cache._generations.clear()  # any process's next read
    assert BATCH.get("detail:2") is None


def stored_counts(name: str) -> dict[str, int]:
    """The shared figures as another process reads them (this one's buffer left out)."""
    keys = {name: cache._metrics_key(name)}
    return cache_metrics.read_from_redis(cache._redis_client(), keys).get(name, {})


def test_counts_reach_the_shared_figures_without_a_further_operation() -> None:
    cache.flush_metrics()  # the next operation is within METRICS_FLUSH_S of a flush
    BATCH.get_or_compute("detail:3", lambda: "done")
    BATCH.get_or_compute("detail:3", lambda: "done")
    wait_for(lambda: stored_counts("batch").get("hits") == 1, 10, "the flush of the counts")
    assert stored_counts("batch")["misses"] == 1


def test_a_value_computed_before_an_invalidation_is_not_stored_after_it() -> None:
    """The worker commits `done` and invalidates while a target request, which read the
    batch as `calculating` just before, is still computing: that value must not be cached."""

    def read_then_invalidated_elsewhere() -> str:
        status = "calculating"  # what the database said when this request read it
        BATCH.delete("detail:4")  # the worker's invalidation after its commit
        return status

    assert BATCH.get_or_compute("detail:4", read_then_invalidated_elsewhere) == "calculating"
    assert BATCH.get_or_compute("detail:4", lambda: "done") == "done"


def test_a_prefix_invalidation_during_a_computation_keeps_its_value_out_too() -> None:
    def read_then_invalidated_elsewhere() -> str:
        BATCH.invalidate_prefix(cache.key("detail"))
        return "calculating"

    BATCH.get_or_compute(cache.key("detail", 5), read_then_invalidated_elsewhere)
    assert BATCH.get(cache.key("detail", 5)) is None
