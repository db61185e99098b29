"""What one tagged request costs inside the app: database time and queries through
`connection.execute_wrapper`, Django cache calls through the cache backends' methods."""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable
from typing import Any

from offgridperf_agent.aggregate import N_PLUS_ONE_MIN, fingerprint

perf_counter_ns = time.perf_counter_ns

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
    """What one tagged request ran, kept as cheaply as the hot path allows: each query costs two
    clock reads and one dict lookup by its SQL text (Django passes the same string object for
    the same statement). Only a text new to the request is fingerprinted here (memoised), to
    catch N+1s of inline values; grouping by fingerprint waits for the publishing thread."""

    __slots__ = ("statements", "frames", "fingerprints", "cache_calls", "cache_ns", "in_cache")

    def __init__(self) -> None:
        # SQL as run -> [count, total ns]
        self.statements: dict[str, list[int]] = {}
        # SQL as run -> the first frame of the app's code that ran it (N+1 groups only)
        self.frames: dict[str, str] = {}
        # fingerprint -> distinct SQL texts seen with it (statements with inline values)
        self.fingerprints: dict[str, int] = {}
        self.cache_calls = 0
        self.cache_ns = 0
        self.in_cache = False

    def execute(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        """A `connection.execute_wrapper`: times the query and files it by its SQL text."""
        started = perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = perf_counter_ns() - started
            if sql.__class__ is not str:  # e.g. psycopg's sql.Composed
                sql = str(sql)
            entry = self.statements.get(sql)
            if entry is not None:
                entry[0] += 1
                entry[1] += elapsed
                # The frame is looked up once per group, when it becomes an N+1.
                if entry[0] == N_PLUS_ONE_MIN:
                    self.frames[sql] = app_frame()
            else:
                self.statements[sql] = [1, elapsed]
                self._new_statement(sql)

    def _new_statement(self, sql: str) -> None:
        """The same statement with other inline values is the same fingerprint: its group
        becomes an N+1 at its fifth distinct text."""
        fp = fingerprint(sql)
        seen = self.fingerprints[fp] = self.fingerprints.get(fp, 0) + 1
        if seen == N_PLUS_ONE_MIN:
            self.frames[sql] = app_frame()


# Source file -> whether it is the framework's or the agent's: decided once per file, so the walk
# costs a dict lookup a frame.
_skipped_files: dict[str, bool] = {}


def _is_skipped(filename: str) -> bool:
    return filename.startswith(("<", *_SKIPPED_PREFIXES)) or any(
        part in filename for part in _SKIPPED_PARTS
    )


def app_frame() -> str:
    """`module.function:line` of the innermost frame of the app's own code."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        skipped = _skipped_files.get(filename)
        if skipped is None:
            skipped = _skipped_files[filename] = _is_skipped(filename)
        if not skipped:
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
