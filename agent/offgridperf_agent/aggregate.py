"""Per (run, step, second) figures of the tagged requests a process served.

Histograms use HdrHistogram's (1 µs, 1 h, 3 significant digits) layout, kept sparse as
{counts index: count}, so the workbench adds them straight into its own histograms. Pure
standard library.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

# HdrHistogram(1, 3_600_000_000, 3): 2048 sub-buckets, the upper 1024 new in each bucket.
_SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10
_SUB_BUCKET_MASK = (1 << (_SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)) - 1
_BUCKET_SHIFT = _SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1
HIGHEST_TRACKABLE_US = 3_600_000_000
# The same SQL this many times or more in one request is an N+1 group.
N_PLUS_ONE_MIN = 5
# Fingerprints kept per (run, step, second) and published: the costliest ones.
TOP_FINGERPRINTS = 10
# Long enough for the workbench to parse most statements again (its query pages fingerprint
# them as PostgreSQL does); a longer one is cut and gets a query page of its own.
SQL_SAMPLE_CHARS = 2000

_WHITESPACE = re.compile(r"\s+")
_PLACEHOLDER_LIST = re.compile(r"\(\s*(?:%s|\?)(?:\s*,\s*(?:%s|\?))*\s*\)")
_NUMBER = re.compile(r"\b\d+\b")
_STRING = re.compile(r"'(?:[^']|'')*'")


def counts_index(value_us: int) -> int:
    """HdrHistogram's counts slot for `value_us` (clamped to 0 .. one hour)."""
    value_us = min(max(int(value_us), 0), HIGHEST_TRACKABLE_US)
    bucket = (value_us | _SUB_BUCKET_MASK).bit_length() - _BUCKET_SHIFT
    return (bucket << _SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (value_us >> bucket)


def normalise_sql(sql: str) -> str:
    """SQL with its literals and placeholder lists folded, so that the same statement with
    other values (or another number of IN values) reads the same."""
    sql = _STRING.sub("?", sql)
    sql = _NUMBER.sub("?", sql)
    sql = _PLACEHOLDER_LIST.sub("(...)", sql.replace("%s", "?"))
    return _WHITESPACE.sub(" ", sql).strip()


# An app sends the same parametrised statements again and again: each is normalised once.
@functools.lru_cache(maxsize=4096)
def fingerprint(sql: str) -> str:
    return hashlib.sha1(normalise_sql(sql).encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass(slots=True)
class RequestFigures:
    """What one tagged request measured, as the request left it (nanoseconds, SQL as run)."""

    server_ns: int
    cpu_ns: int
    cache_calls: int
    cache_ns: int
    view: str
    status: int
    # SQL as run -> [count, total ns]
    statements: dict[str, list[int]]
    # SQL as run -> first frame of the app's code that ran it (N+1 groups only)
    frames: dict[str, str]

    def by_fingerprint(self) -> dict[str, list[Any]]:
        """fingerprint -> [count, total µs, sample SQL, frame]: the same statement with other
        inline values folded into one."""
        folded: dict[str, list[Any]] = {}
        for sql, (count, total_ns) in self.statements.items():
            fp = fingerprint(sql)
            mine = folded.get(fp)
            if mine is None:
                folded[fp] = [count, total_ns, sql[:SQL_SAMPLE_CHARS], self.frames.get(sql, "")]
            else:
                mine[0] += count
                mine[1] += total_ns
                mine[3] = mine[3] or self.frames.get(sql, "")
        for entry in folded.values():
            entry[1] //= 1000
        return folded


@dataclass
class StepSecond:
    requests: int = 0
    server_us: int = 0
    cpu_us: int = 0
    db_us: int = 0
    queries: int = 0
    queries_max: int = 0
    cache_calls: int = 0
    cache_us: int = 0
    server_hist: Counter = field(default_factory=Counter)
    db_hist: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    views: Counter = field(default_factory=Counter)
    # fingerprint -> [count, total µs, sample SQL]
    sql: dict[str, list[Any]] = field(default_factory=dict)
    # "fingerprint|view|frame" -> {"fingerprint", "view", "frame", "requests", "count"}
    n_plus_one: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, figures: RequestFigures) -> None:
        server_us = figures.server_ns // 1000
        statements = figures.by_fingerprint()
        queries = sum(entry[0] for entry in statements.values())
        db_us = sum(entry[1] for entry in statements.values())
        self.requests += 1
        self.server_us += server_us
        self.cpu_us += figures.cpu_ns // 1000
        self.db_us += db_us
        self.queries += queries
        self.queries_max = max(self.queries_max, queries)
        self.cache_calls += figures.cache_calls
        self.cache_us += figures.cache_ns // 1000
        self.server_hist[counts_index(server_us)] += 1
        self.db_hist[counts_index(db_us)] += 1
        self.statuses[str(figures.status)] += 1
        self.views[figures.view] += 1
        for fp, (count, total_us, sample, frame) in statements.items():
            mine = self.sql.get(fp)
            if mine is None:
                self.sql[fp] = [count, total_us, sample]
            else:
                mine[0] += count
                mine[1] += total_us
            if count >= N_PLUS_ONE_MIN:
                self._n_plus_one(fp, figures.view, frame, sample, count)

    def _n_plus_one(self, fp: str, view: str, frame: str, sample: str, count: int) -> None:
        key = f"{fp}|{view}|{frame}"
        group = self.n_plus_one.get(key)
        if group is None:
            group = self.n_plus_one[key] = {"fingerprint": fp, "view": view, "frame": frame,
                                            "sql": sample, "requests": 0, "count": 0}  # fmt: skip
        group["requests"] += 1
        group["count"] = max(group["count"], count)

    def as_message(self, run_id: int, step: str, second: int) -> dict[str, Any]:
        top = sorted(self.sql.items(), key=lambda item: item[1][1], reverse=True)
        return {
            "run": run_id,
            "step": step,
            "second": second,
            "requests": self.requests,
            "server_us": self.server_us,
            "cpu_us": self.cpu_us,
            "db_us": self.db_us,
            "queries": self.queries,
            "queries_max": self.queries_max,
            "cache_calls": self.cache_calls,
            "cache_us": self.cache_us,
            "server_hist": {str(k): v for k, v in self.server_hist.items()},
            "db_hist": {str(k): v for k, v in self.db_hist.items()},
            "statuses": dict(self.statuses),
            "views": dict(self.views),
            "sql": [
                {"fingerprint": fp, "count": count, "total_us": total_us, "sql": sample}
                for fp, (count, total_us, sample) in top[:TOP_FINGERPRINTS]
            ],
            "n_plus_one": list(self.n_plus_one.values()),
        }


class Aggregator:
    """Requests hand their figures over with `record` (one append to a deque, which is
    thread-safe, so the request's path takes no lock); the publishing thread folds them into
    per (run, step, second) figures when it takes them, once a second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorded: deque[tuple[int, str, int, RequestFigures]] = deque()
        self._seconds: dict[tuple[int, str, int], StepSecond] = {}

    def record(self, run_id: int, step: str, second: int, figures: RequestFigures) -> None:
        self._recorded.append((run_id, step, second, figures))

    def add(self, run_id: int, step: str, second: int, figures: RequestFigures) -> None:
        key = (run_id, step, second)
        with self._lock:
            entry = self._seconds.get(key)
            if entry is None:
                entry = self._seconds[key] = StepSecond()
            entry.add(figures)

    def take(self, before_second: int | None = None) -> list[dict[str, Any]]:
        """The messages of every second before `before_second` (all when None), removed."""
        while True:
            try:
                recorded = self._recorded.popleft()
            except IndexError:  # drained (here, or by another thread taking too)
                break
            self.add(*recorded)
        with self._lock:
            keys = [k for k in self._seconds if before_second is None or k[2] < before_second]
            taken = [(k, self._seconds.pop(k)) for k in keys]
        return [entry.as_message(*key) for key, entry in taken]
