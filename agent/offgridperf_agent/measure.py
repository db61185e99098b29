"""What one tagged request costs inside the app: database time and queries through
`connection.execute_wrapper`, Django cache calls through the cache backends' methods."""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable
from typing import Any

from offgridperf_agent.aggregate import N_PLUS_ONE_MIN, SQL_SAMPLE_CHARS, fingerprint

# The measure of the request this context serves; None outside tagged requests.
current: contextvars.ContextVar[RequestMeasure | None] = contextvars.ContextVar(
    "offgridperf_agent_measure", default=None
)
# Frames in these trees are the framework or the agent, never "the app's code".
_SKIPPED_PREFIXES = tuple(
    path for path in {sys.prefix, sys.base_prefix, sys.exec_prefix} if len(path) > 1
)
_SKIPPED_PARTS = ("/site-packages/", "/dist-packages/", "/django/", "/offgridperf_agent/")


class RequestMeasure:
    __slots__ = ("db_ns", "queries", "by_fingerprint", "frames", "cache_calls", "cache_ns",
                 "in_cache")  # fmt: skip

    def __init__(self) -> None:
        self.db_ns = 0
        self.queries = 0
        # fingerprint -> [count, total µs, sample SQL]
        self.by_fingerprint: dict[str, list[Any]] = {}
        self.frames: dict[str, str] = {}
        self.cache_calls = 0
        self.cache_ns = 0
        self.in_cache = False

    def execute(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """A `connection.execute_wrapper`: times the query and files it by fingerprint."""
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter_ns() - started
            self.db_ns += elapsed
            self.queries += 1
            text = sql if isinstance(sql, str) else str(sql)
            fp = fingerprint(text)
            entry = self.by_fingerprint.get(fp)
            if entry is None:
                self.by_fingerprint[fp] = [1, elapsed // 1000, text[:SQL_SAMPLE_CHARS]]
            else:
                entry[0] += 1
                entry[1] += elapsed // 1000
                # The frame is looked up once per group, when it becomes an N+1.
                if entry[0] == N_PLUS_ONE_MIN:
                    self.frames[fp] = app_frame()


def app_frame() -> str:
    """`module.function:line` of the innermost frame of the app's own code."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (
            filename.startswith(("<", *_SKIPPED_PREFIXES))
            or any(part in filename for part in _SKIPPED_PARTS)
        ):
            module = frame.f_globals.get("__name__", filename)
            return f"{module}.{frame.f_code.co_name}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


# The primitive cache operations; compound ones (get_or_set, get_many in the base class) call
# these, and the re-entry guard counts only the outer call.
CACHE_METHODS = ("get", "set", "add", "delete", "touch", "incr", "decr", "has_key", "get_many",
                 "set_many", "delete_many", "get_or_set", "clear")  # fmt: skip


def _timed(method: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        measure = current.get()
        if measure is None or measure.in_cache:
            return method(*args, **kwargs)
        measure.in_cache = True
        started = time.perf_counter_ns()
        try:
            return method(*args, **kwargs)
        finally:
            measure.cache_ns += time.perf_counter_ns() - started
            measure.cache_calls += 1
            measure.in_cache = False

    timed.__wrapped__ = method  # type: ignore[attr-defined]
    timed.__name__ = getattr(method, "__name__", "timed")
    timed._offgridperf_agent = True  # type: ignore[attr-defined]
    return timed


def instrument_cache_class(cls: type) -> None:
    """Time the cache methods `cls` defines or inherits (once per class)."""
    for name in CACHE_METHODS:
        method = getattr(cls, name, None)
        if method is None or getattr(method, "_offgridperf_agent", False):
            continue
        setattr(cls, name, _timed(method))


def instrument_caches() -> None:
    """Time every configured Django cache backend's calls made during tagged requests."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    for config in getattr(settings, "CACHES", {}).values():
        try:
            instrument_cache_class(import_string(config["BACKEND"]))
        except (ImportError, KeyError):
            continue
