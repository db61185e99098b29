"""Counters and latency histograms of the cache layer, per strategy.

Each process counts into an in-memory buffer (no extra Redis round trip per operation) and
flushes it about once a second into one Redis hash per strategy with HINCRBY, so figures
add up across processes. Latency goes into log-scale buckets (8 per power of two, about 9%
wide), stored as hash fields `l<index>`; percentiles are read back from the bucket counts.
Without Redis the totals live in this process only.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COUNTERS = ("hits", "misses", "stale", "computes", "errors", "bypassed", "sets", "deletes")
BUCKETS_PER_OCTAVE = 8
LATENCY_FIELD_PREFIX = "l"


def latency_bucket(seconds: float) -> int:
    """The bucket index of a latency: floor(log2(microseconds) * 8), 0 below 1 µs."""
    micros = seconds * 1_000_000
    if micros <= 1:
        return 0
    return int(math.log2(micros) * BUCKETS_PER_OCTAVE)


def bucket_midpoint_ms(index: int) -> float:
    """The geometric middle of a bucket, in milliseconds."""
    return 2 ** ((index + 0.5) / BUCKETS_PER_OCTAVE) / 1000


def percentile_ms(buckets: Mapping[int, int], quantile: float) -> float | None:
    """The latency below which `quantile` (0..1) of the recorded operations fall."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return bucket_midpoint_ms(index)
    return bucket_midpoint_ms(max(buckets))


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
