"""Counters and latency histograms of the cache layer, per strategy.

Each process counts into an in-memory buffer (no extra Redis round trip per operation) and
flushes it about once a second into one Redis hash per strategy with HINCRBY, so figures
add up across processes. Latency goes into the slots of stats' HdrHistogram layout at one
significant digit (16 per power of two, at most 6.25% wide: a hash holds tens of fields, not
the thousands of the 3-digit layout), stored as hash fields `h<slot>`; percentiles are read
back from the slot counts by stats' rule, as on every other page. Fields `l<index>` of the
earlier log buckets are ignored (latency figures start afresh on upgrade). Without Redis the
totals live in this process only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stats.histogram import (
    HIGHEST_TRACKABLE_US,
    counts_index,
    half_count_magnitude,
    sparse_percentiles,
)

COUNTERS = ("hits", "misses", "stale", "computes", "errors", "bypassed", "sets", "deletes")
LATENCY_MAGNITUDE = half_count_magnitude(1)
LATENCY_FIELD_PREFIX = "h"


def latency_bucket(seconds: float) -> int:
    """The histogram slot of a latency (whole microseconds, stats' 1-digit layout)."""
    micros = min(max(int(seconds * 1_000_000), 0), HIGHEST_TRACKABLE_US)
    return counts_index(micros, LATENCY_MAGNITUDE)


def percentile_ms(buckets: Mapping[int, int], quantile: float) -> float | None:
    """The latency (ms) at `quantile` (0..1) of the recorded operations, by stats' rule."""
    percentile = quantile * 100
    value = sparse_percentiles(buckets, (percentile,), LATENCY_MAGNITUDE)[percentile]
    return None if value is None else value / 1000


@dataclass(frozen=True)
class StrategyFigures:
    """What the dashboard shows for one strategy."""

    counters: dict[str, int]
    latency_buckets: dict[int, int]

    @property
    def lookups(self) -> int:
        return self.counters["hits"] + self.counters["misses"]

    @property
    def hit_rate(self) -> float | None:
        return self.counters["hits"] / self.lookups if self.lookups else None

    @property
    def operations(self) -> int:
        return sum(self.latency_buckets.values())

    def latency_ms(self, quantile: float) -> float | None:
        return percentile_ms(self.latency_buckets, quantile)


def figures_from_fields(fields: Mapping[str, int]) -> StrategyFigures:
    counters = {name: int(fields.get(name, 0)) for name in COUNTERS}
    buckets = {
        int(field[len(LATENCY_FIELD_PREFIX) :]): int(count)
        for field, count in fields.items()
        if field.startswith(LATENCY_FIELD_PREFIX) and field[len(LATENCY_FIELD_PREFIX) :].isdigit()
    }
    return StrategyFigures(counters=counters, latency_buckets=buckets)


def merge_fields(*parts: Mapping[str, int]) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for part in parts:
        merged.update(part)
    return dict(merged)


class Buffer:
    """Per-process counts not yet flushed, by strategy then hash field. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Counter[str]] = {}

    def count(self, strategy: str, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._pending.setdefault(strategy, Counter())[counter] += amount

    def latency(self, strategy: str, seconds: float) -> None:
        field = f"{LATENCY_FIELD_PREFIX}{latency_bucket(seconds)}"
        with self._lock:
            self._pending.setdefault(strategy, Counter())[field] += 1

    def take(self) -> dict[str, Counter[str]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def give_back(self, pending: Mapping[str, Counter[str]]) -> None:
        with self._lock:
            for strategy, fields in pending.items():
                self._pending.setdefault(strategy, Counter()).update(fields)

    def peek(self, strategy: str) -> dict[str, int]:
        with self._lock:
            return dict(self._pending.get(strategy, {}))

    def clear(self, strategies: Iterable[str] | None = None) -> None:
        with self._lock:
            if strategies is None:
                self._pending.clear()
            for strategy in strategies or ():
                self._pending.pop(strategy, None)


def flush_to_redis(client: Any, key_for: Any, pending: Mapping[str, Mapping[str, int]]) -> None:
    """Add the pending counts to the strategies' hashes in one pipeline (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for strategy, fields in pending.items():
        for field, amount in fields.items():
            if amount:
                pipe.hincrby(key_for(strategy), field, amount)
    pipe.execute()


def read_from_redis(client: Any, keys: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """HGETALL of every strategy's hash in one pipeline: {strategy: {field: count}}."""
    pipe = client.pipeline(transaction=False)
    for key in keys.values():
        pipe.hgetall(key)
    replies = pipe.execute()
    return {
        strategy: {_text(field): int(count) for field, count in reply.items()}
        for strategy, reply in zip(keys, replies, strict=True)
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
