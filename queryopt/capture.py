"""Timing of the app's own queries in every request and Celery task.

`CaptureMiddleware` and the Celery `task_prerun`/`task_postrun` handlers open a capture scope:
Django's `execute_wrapper` on every database connection of the thread times each query
(`perf_counter_ns`), fingerprints it with pglast (once per distinct SQL string, cached) and adds
it to the scope's per-fingerprint statistics, whose histogram slots are those of the
HdrHistogram-compatible histogram in `stats`. When the scope ends its statistics are merged, under
the scope's origin ("GET emissions.views.batches" or the task name), into this process's
window; a fingerprint run at least QUERYOPT_N_PLUS_ONE_MIN times in the scope is an N+1 group.
About once a second, on the request/task path, the window is written to the database
(QueryStatWindow, SlowQuery, NPlusOne, QueryShape): `flush()`. A flush that fails is
logged once and its counts dropped; it never breaks the request.

Cost goes where it is cheap: the per-query path is a dict lookup and a few integer updates;
stack walks (the first frame of our own code) happen only for slow queries and N+1 groups.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from queryopt.fingerprints import normalize_query
from stats.histogram import HIGHEST_TRACKABLE_US, Histogram, counts_index, sparse_percentiles

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
# Distinct SQL strings whose fingerprints are kept (IN lists of every length are distinct).
FINGERPRINT_CACHE_SIZE = 4096
# Slow queries kept in memory per window (and per scope); more are counted, not stored.
MAX_SLOW_PER_WINDOW = 1000
OWN_TARGET_CACHE_S = 60.0
MAX_PARAM_CHARS = 1000
MAX_PARAM_ITEMS = 100
# Rows of an executemany kept with a slow statement's parameters.
MAX_MANY_ROWS = 10
UNRESOLVED_VIEW = "(no view)"
PRERUN_UID = "queryopt-capture-task-prerun"
POSTRUN_UID = "queryopt-capture-task-postrun"

# The innermost scope of this thread or task: a task run eagerly inside a request is counted
# once, by the task's scope, though both wrappers see its queries.
_active: ContextVar[_Scope | None] = ContextVar("queryopt_capture_scope", default=None)
# The flush's own queries are never captured, whatever wrapper is installed.
_flushing = threading.local()


# -- statistics -------------------------------------------------------------------------------


class Stat:
    """Counts of one fingerprint: calls, errors, exact min/max/total and histogram slots."""

    __slots__ = ("text", "calls", "errors", "total_ns", "min_ns", "max_ns", "slots")

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        # Sparse HdrHistogram slots (counts_index -> count): a full Histogram is 23,552 slots.
        self.slots: dict[int, int] = {}

    def add(self, elapsed_ns: int, failed: bool) -> None:
        if self.calls == 0 or elapsed_ns < self.min_ns:
            self.min_ns = elapsed_ns
        if elapsed_ns > self.max_ns:
            self.max_ns = elapsed_ns
        self.calls += 1
        self.total_ns += elapsed_ns
        if failed:
            self.errors += 1
        index = counts_index(min(elapsed_ns // 1000, HIGHEST_TRACKABLE_US))
        slots = self.slots
        slots[index] = slots.get(index, 0) + 1

    def merge(self, other: Stat) -> None:
        if self.calls == 0 or other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        self.max_ns = max(self.max_ns, other.max_ns)
        self.calls += other.calls
        self.errors += other.errors
        self.total_ns += other.total_ns
        for index, count in other.slots.items():
            self.slots[index] = self.slots.get(index, 0) + count

    def percentile_ms(self, percentile: float) -> float:
        """The value at `percentile` (stats' rule over the slots), 0.0 before any call."""
        value = sparse_percentiles(self.slots, (percentile,))[percentile]
        return 0.0 if value is None else value / 1000

    def encoded_histogram(self) -> str:
        histogram = Histogram()
        for index, count in self.slots.items():
            histogram.counts[index] += count
        return histogram.encode()


@dataclass
class SlowRecord:
    fingerprint: str
    text: str
    captured_at: datetime
    duration_ms: float
    sql: str
    params: Any
    code_frame: str
    error: str
    origin: str = ""


@dataclass
class NPlusOneRecord:
    text: str
    occurrences: int
    last_count: int
    max_count: int
    total_ms: float
    code_frame: str
    first_seen_at: datetime
    last_seen_at: datetime


_fingerprints: dict[str, tuple[str, str]] = {}


def fingerprint_of(sql: str) -> tuple[str, str]:
    """(fingerprint, normalised text) of `sql`; pglast runs once per distinct SQL string."""
    cache = _fingerprints
    found = cache.get(sql)
    if found is None:
        normalized = normalize_query(sql)
        found = (normalized.fingerprint, normalized.text)
        if len(cache) >= FINGERPRINT_CACHE_SIZE:
            # Oldest first (dicts keep insertion order): cheap, and good enough for SQL that
            # repeats because its values travel as parameters.
            del cache[next(iter(cache))]
        cache[sql] = found
    return found


# -- where a query comes from ------------------------------------------------------------------


def code_frame() -> str:
    """'path:line function' of the innermost caller in our own code ('' if there is none)."""
    frame = sys._getframe(1)
    while frame is not None:
        relative = _own_path(frame.f_code.co_filename)
        if relative:
            return f"{relative}:{frame.f_lineno} {frame.f_code.co_name}"[:300]
        frame = frame.f_back
    return ""


@lru_cache(maxsize=2048)
def _own_path(filename: str) -> str:
    base = Path(settings.BASE_DIR).resolve()
    try:
        relative = Path(filename).resolve().relative_to(base)
    except ValueError:
        return ""
    parts = relative.parts
    if "site-packages" in parts or parts[0] in {"django", ".venv"} or parts == _THIS_FILE:
        return ""
    return relative.as_posix()


_THIS_FILE = ("queryopt", "capture.py")


def request_origin(request: HttpRequest) -> str:
    """'METHOD dotted.view.path' of a resolved request."""
    match = getattr(request, "resolver_match", None)
    view = (getattr(match, "_func_path", "") or getattr(match, "view_name", "")) if match else ""
    return f"{request.method} {view or UNRESOLVED_VIEW}"[:200]


def json_safe(value: Any) -> Any:
    """`value` as JSON can hold it: str() of other types, long strings and lists cut short."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value[:MAX_PARAM_CHARS]
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value[:MAX_PARAM_ITEMS]]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in list(value.items())[:MAX_PARAM_ITEMS]}
    return str(value)[:MAX_PARAM_CHARS]


# -- one request or task -----------------------------------------------------------------------


class _Scope:
    """The queries of one request or task, counted per fingerprint."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.stats: dict[str, Stat] = {}
        self.slow: list[SlowRecord] = []
        self.frames: dict[str, str] = {}
        # Settings read once per scope, not per query.
        self.slow_ns = int(settings.QUERYOPT_SLOW_MS * 1_000_000)
        self.keep_params = settings.QUERYOPT_KEEP_PARAMS
        self.n_plus_one_min = settings.QUERYOPT_N_PLUS_ONE_MIN

    def execute(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """Django's execute_wrapper protocol."""
        if _active.get() is not self or getattr(_flushing, "on", False):
            return execute(sql, params, many, context)
        started = time.perf_counter_ns()
        error: BaseException | None = None
        try:
            return execute(sql, params, many, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.record(sql, params, many, time.perf_counter_ns() - started, error)

    def record(
        self, sql: Any, params: Any, many: bool, elapsed_ns: int, error: BaseException | None
    ) -> None:
        """Count one query (the analysis cost per query the bench measures)."""
        sql = sql if isinstance(sql, str) else str(sql)
        fingerprint, text = fingerprint_of(sql)
        stat = self.stats.get(fingerprint)
        if stat is None:
            stat = self.stats[fingerprint] = Stat(text)
        stat.add(elapsed_ns, error is not None)
        if stat.calls == self.n_plus_one_min:
            self.frames[fingerprint] = code_frame()
        if elapsed_ns >= self.slow_ns and len(self.slow) < MAX_SLOW_PER_WINDOW:
            self.slow.append(
                self._slow_record(fingerprint, text, sql, params, many, elapsed_ns, error)
            )

    def _slow_record(
        self,
        fingerprint: str,
        text: str,
        sql: str,
        params: Any,
        many: bool,
        elapsed_ns: int,
        error: BaseException | None,
    ) -> SlowRecord:
        kept = None
        if self.keep_params and params is not None:
            kept = json_safe(list(params)[:MAX_MANY_ROWS] if many else params)
        return SlowRecord(
            fingerprint=fingerprint,
            text=text,
            captured_at=timezone.now(),
            duration_ms=elapsed_ns / 1e6,
            # Redacted: the normalised text, where every constant and parameter is $n.
            sql=sql if self.keep_params else text,
            params=kept,
            code_frame=code_frame(),
            error=f"{type(error).__name__}: {error}"[:2000] if error else "",
        )


class _Capture:
    """A scope installed on every connection of this thread, from start() to stop()."""

    def __init__(self, origin: str) -> None:
        self.scope = _Scope(origin)
        self._stack = ExitStack()
        self._token: Token[_Scope | None] | None = None

    def start(self) -> _Scope:
        self._token = _active.set(self.scope)
        for conn in connections.all():
            self._stack.enter_context(conn.execute_wrapper(self.scope.execute))
        return self.scope

    def stop(self) -> None:
        try:
            self._stack.close()
        finally:
            self._restore_active()
            _recorder.merge(self.scope)
            maybe_flush()

    def _restore_active(self) -> None:
        try:
            if self._token is not None:
                _active.reset(self._token)
        except ValueError:  # stopped in another context than it started in
            _active.set(None)


@contextmanager
def capturing(origin: str) -> Iterator[None]:
    """Capture the queries of a block as one scope (a script, a management command, a test)."""
    capture = _Capture(origin[:200])
    capture.start()
    try:
        yield
    finally:
        capture.stop()


class CaptureMiddleware:
    """Times every query of a request; outermost, so that session and auth queries count."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.QUERYOPT_CAPTURE:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        capture = _Capture(f"{request.method} {UNRESOLVED_VIEW}")
        capture.start()
        try:
            return self.get_response(request)
        finally:
            capture.stop()

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        # The view is known only once the URL is resolved, after this middleware's __call__
        # began; the scope's queries are filed under it when the scope ends.
        scope = _active.get()
        if scope is not None:
            scope.origin = request_origin(request)


_task_captures: dict[str, _Capture] = {}


def _task_started(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    capture = _Capture(str(getattr(sender, "name", None) or "celery task")[:200])
    _task_captures[task_id or ""] = capture
    capture.start()


def _task_finished(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    capture = _task_captures.pop(task_id or "", None)
    if capture is not None:
        capture.stop()


def install() -> None:
    """Called once from QueryoptConfig.ready(); with QUERYOPT_CAPTURE off, installs nothing."""
    if not settings.QUERYOPT_CAPTURE:
        return
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid=PRERUN_UID)
    task_postrun.connect(_task_finished, weak=False, dispatch_uid=POSTRUN_UID)


def uninstall() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.disconnect(_task_started, dispatch_uid=PRERUN_UID)
    task_postrun.disconnect(_task_finished, dispatch_uid=POSTRUN_UID)


# -- this process's window ---------------------------------------------------------------------


@dataclass
class Window:
    started_at: datetime
    stats: dict[tuple[str, str], Stat] = field(default_factory=dict)
    slow: list[SlowRecord] = field(default_factory=list)
    slow_dropped: int = 0
    n_plus_ones: dict[tuple[str, str], NPlusOneRecord] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.stats or self.slow or self.n_plus_ones)


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window = Window(timezone.now())
        self.last_flush = time.monotonic()

    def merge(self, scope: _Scope) -> None:
        now = timezone.now()
        origin = scope.origin
        with self.lock:
            window = self.window
            for fingerprint, stat in scope.stats.items():
                key = (fingerprint, origin)
                into = window.stats.get(key)
                if into is None:
                    window.stats[key] = stat
                else:
                    into.merge(stat)
                if stat.calls >= scope.n_plus_one_min:
                    self._n_plus_one(window, key, stat, scope.frames.get(fingerprint, ""), now)
            room = MAX_SLOW_PER_WINDOW - len(window.slow)
            for record in scope.slow[: max(room, 0)]:
                record.origin = origin
                window.slow.append(record)
            window.slow_dropped += max(len(scope.slow) - max(room, 0), 0)

    @staticmethod
    def _n_plus_one(
        window: Window, key: tuple[str, str], stat: Stat, frame: str, now: datetime
    ) -> None:
        group = window.n_plus_ones.get(key)
        if group is None:
            window.n_plus_ones[key] = NPlusOneRecord(
                stat.text, 1, stat.calls, stat.calls, stat.total_ns / 1e6, frame, now, now
            )
            return
        group.occurrences += 1
        group.last_count = stat.calls
        group.max_count = max(group.max_count, stat.calls)
        group.total_ms += stat.total_ns / 1e6
        group.code_frame = frame or group.code_frame
        group.last_seen_at = now

    def take(self) -> Window:
        with self.lock:
            window, self.window = self.window, Window(timezone.now())
            self.last_flush = time.monotonic()
        return window


_recorder = _Recorder()
_failure_logged = [False]
_own_target: list[Any] = [None, -math.inf]  # [target id or None, monotonic expiry]


def maybe_flush() -> None:
    if time.monotonic() - _recorder.last_flush >= FLUSH_INTERVAL_S:
        flush()


def flush() -> bool:
    """Write this process's window to the database now. False (logged once) if it failed."""
    window = _recorder.take()
    if window.is_empty():
        return True
    _flushing.on = True
    # Bookkeeping of the tool, not the app's queries: kept out of query-count assertions
    # (django_assert_num_queries) and debug query logs of the request that triggered it.
    forced, connection.force_debug_cursor = connection.force_debug_cursor, False
    try:
        with transaction.atomic():
            _write(window, timezone.now())
    except Exception as exc:  # noqa: BLE001 - never break the request; the counts are dropped
        _own_target[1] = -math.inf  # a deleted own target must not fail the next flush too
        if not _failure_logged[0]:
            log.warning("queryopt capture: flush failed, counts dropped: %s", exc)
            _failure_logged[0] = True
        return False
    finally:
        connection.force_debug_cursor = forced
        _flushing.on = False
    _failure_logged[0] = False
    return True


def reset() -> None:
    """Forget pending counts and cached look-ups (tests, or a process that forked)."""
    _recorder.take()
    _own_target[:] = [None, -math.inf]
    _fingerprints.clear()
    _own_path.cache_clear()


def _write(window: Window, now: datetime) -> None:
    if window.slow_dropped:
        log.info("queryopt capture: %d slow queries over the window's limit", window.slow_dropped)
    target_id = _own_target_id()
    run_id = _running_run_id()
    texts = {fingerprint: stat.text for (fingerprint, _), stat in window.stats.items()}
    texts.update({record.fingerprint: record.text for record in window.slow})
    ids = _shape_ids(target_id, texts, now)
    _write_windows(window, ids, run_id, now)
    _write_slow(window.slow, ids, run_id)
    for (fingerprint, origin), group in window.n_plus_ones.items():
        _upsert_n_plus_one(ids[fingerprint], origin, group, run_id)


def _own_target_id() -> int | None:
    from queryopt.models import QueryTarget

    if time.monotonic() >= _own_target[1]:
        found = QueryTarget.objects.filter(own_database=True).order_by("pk").values_list("pk")
        first = found.first()
        _own_target[:] = [first[0] if first else None, time.monotonic() + OWN_TARGET_CACHE_S]
    return _own_target[0]


def _running_run_id() -> int | None:
    from loadtests.models import LoadTestRun, RunStatus

    running = list(LoadTestRun.objects.filter(status=RunStatus.RUNNING).values_list("pk")[:2])
    return running[0][0] if len(running) == 1 else None


def _shape_ids(target_id: int | None, texts: dict[str, str], now: datetime) -> dict[str, int]:
    """The id of the QueryShape of each fingerprint in `texts`, created when new."""
    from queryopt.models import QueryShape

    rows = (
        QueryShape.objects.filter(target_id=target_id)
        if target_id is not None
        else QueryShape.objects.filter(target__isnull=True)
    )
    ids = dict(rows.filter(fingerprint__in=list(texts)).values_list("fingerprint", "pk"))
    missing = [fingerprint for fingerprint in texts if fingerprint not in ids]
    if missing:
        # ignore_conflicts: another process may create the same fingerprint at the same time.
        QueryShape.objects.bulk_create(
            [QueryShape(target_id=target_id, fingerprint=f, query_text=texts[f]) for f in missing],
            ignore_conflicts=True,
        )
        ids.update(rows.filter(fingerprint__in=missing).values_list("fingerprint", "pk"))
    QueryShape.objects.filter(pk__in=list(ids.values())).update(last_seen_at=now)
    return ids


def _write_windows(window: Window, ids: dict[str, int], run_id: int | None, now: datetime) -> None:
    from queryopt.models import QueryStatWindow

    QueryStatWindow.objects.bulk_create(
        QueryStatWindow(
            shape_id=ids[fingerprint],
            window_start=window.started_at,
            window_end=now,
            origin=origin,
            run_id=run_id,
            calls=stat.calls,
            errors=stat.errors,
            total_ms=stat.total_ns / 1e6,
            min_ms=stat.min_ns / 1e6,
            max_ms=stat.max_ns / 1e6,
            p95_ms=stat.percentile_ms(95),
            p99_ms=stat.percentile_ms(99),
            histogram=stat.encoded_histogram(),
        )
        for (fingerprint, origin), stat in window.stats.items()
    )


def _write_slow(records: Iterable[SlowRecord], ids: dict[str, int], run_id: int | None) -> None:
    from queryopt.models import SlowQuery

    SlowQuery.objects.bulk_create(
        SlowQuery(
            shape_id=ids[record.fingerprint],
            captured_at=record.captured_at,
            duration_ms=record.duration_ms,
            sql=record.sql,
            params=record.params,
            origin=record.origin,
            run_id=run_id,
            code_frame=record.code_frame,
            error=record.error,
        )
        for record in records
    )


def _upsert_n_plus_one(
    shape_id: int, origin: str, group: NPlusOneRecord, run_id: int | None
) -> None:
    from queryopt.models import NPlusOne

    changes = {
        "occurrences": F("occurrences") + group.occurrences,
        "last_count": group.last_count,
        "max_count": Greatest(F("max_count"), group.max_count),
        "total_ms": F("total_ms") + group.total_ms,
        "last_run_id": run_id,
        "last_seen_at": group.last_seen_at,
    }
    if group.code_frame:
        changes["code_frame"] = group.code_frame
    existing = NPlusOne.objects.filter(shape_id=shape_id, origin=origin)
    if existing.update(**changes):
        return
    try:
        with transaction.atomic():
            NPlusOne.objects.create(
                shape_id=shape_id,
                origin=origin,
                occurrences=group.occurrences,
                last_count=group.last_count,
                max_count=group.max_count,
                total_ms=group.total_ms,
                last_run_id=run_id,
                first_seen_at=group.first_seen_at,
                last_seen_at=group.last_seen_at,
                code_frame=group.code_frame,
            )
    except IntegrityError:  # another process created it in between
        existing.update(**changes)
