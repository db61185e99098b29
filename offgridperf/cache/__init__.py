"""The cache layer: named strategies on Django's cache (django-redis: REDIS_URL's Redis, or
the embedded one runall starts; local memory only where a test configures it).

The layer defines no strategy of its own: an app declares its strategies with `register()`
(the emissions demo does so in emissions/cache.py, imported when the app is ready), and the
Cache page lists whatever is registered. Each strategy has its own key prefix and TTL (a fixed
number of seconds, or the name of a setting read at every use). A value is stored as
`<strategy>:<generation>:<key>`; bumping a strategy's generation invalidates all of its keys
at once in O(1) (the old ones expire by TTL). Values are stored with the time they stop being
fresh and kept a little longer (a grace period), so that get_or_compute can serve a stale
value while one caller recomputes it.

Redis is an accelerator, never a dependency: when it fails, a circuit breaker skips it for
BACKOFF_S seconds, then lets one caller at a time probe it (a PING that gives up after
PROBE_TIMEOUT_S) while the others keep skipping it; operations fall back to the source, errors
are counted in-process and logged at most once a minute, and nothing raises to the caller. So
a Redis that is down or hangs costs a process the operations in flight when it went, then one
short probe per BACKOFF_S, never a timeout per request: keep the client's timeouts short and
its retries off (REDIS_* settings), the breaker is what tries again. Other uses of the same
Redis on a request's path (counters, statistics) go through `guarded()`, the same breaker.

Reads fetch a strategy's generation in the same round trip as the value (one MGET), so a
version bump made by any process takes effect at the next read in every process; the
per-process memo (GENERATION_MEMO_S) only guesses which keys to ask for, and writes use it (a
value stored under a generation just replaced is never read). Invalidation by key or prefix
reads the generation afresh, is immediate everywhere, and bumps the strategy's epoch, so that
a value computed from a source read before it is not stored after it. Counts are flushed to
the shared figures at most METRICS_FLUSH_S after an operation, whether or not another one
follows.
An invalidation that Redis misses while down is made good when it returns: the strategy's
generation is bumped before anything else is read.

Keys are built by `key()` only, from the validated parameters: no two distinct parameter sets
share a key, whatever separators their values contain (see `key`).

The package: this module is the layer (strategies, breaker, registry) and its public API;
keys.py builds keys, metrics.py counts and summarises, pages.py and views.py are the Cache page.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import BaseCache, caches
from django_redis.cache import RedisCache
from django_redis.client.default import glob_escape
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from offgridperf.cache import metrics as cache_metrics

# Re-exported: `cache.key` and its limits are part of the layer's public API.
from offgridperf.cache.keys import KEY_PARAMS_MAX as KEY_PARAMS_MAX
from offgridperf.cache.keys import KEY_PART_MAX as KEY_PART_MAX
from offgridperf.cache.keys import KeyValue as KeyValue
from offgridperf.cache.keys import key as key
from offgridperf.cache.metrics import StrategyFigures

log = logging.getLogger(__name__)

CACHE_ALIAS = "default"
BACKOFF_S = 1.0
PROBE_TIMEOUT_S = 0.1
LOG_EVERY_S = 60.0
GENERATION_MEMO_S = 1.0
METRICS_FLUSH_S = 1.0
STALE_GRACE_MAX_S = 60
LOCK_TTL_S = 30
DEFAULT_WAIT_S = 2.0
WAIT_POLL_S = 0.02
KEY_COUNT_SCAN_LIMIT = 200_000
REDIS_ERRORS = (ConnectionInterrupted, RedisError, OSError)

T = TypeVar("T")


class _Down(Exception):
    """Redis is skipped or failed: the caller falls back to the source."""


@dataclass(frozen=True)
class _Entry:
    value: Any
    fresh_until: float

    @property
    def fresh(self) -> bool:
        return time.time() < self.fresh_until


def _backend() -> BaseCache:
    return caches[CACHE_ALIAS]


def uses_redis() -> bool:
    return isinstance(_backend(), RedisCache)


def _redis_client() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection(CACHE_ALIAS)


# --- circuit breaker -------------------------------------------------------------------


class _Breaker:
    """Closed while Redis answers. A failure opens it: Redis is skipped for BACKOFF_S, then
    one caller at a time probes it (half-open) while the others keep skipping it. A probe
    that succeeds closes it; one that fails opens it again. So an outage costs a process the
    operations in flight when it began, then one probe (at most PROBE_TIMEOUT_S) per
    BACKOFF_S, never a timeout per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open_until = 0.0
        self.down_since: float | None = None
        self.probing = False
        self.last_logged = float("-inf")
        self.unlogged_errors = 0

    def allows(self) -> bool:
        """Whether Redis may be tried now (without taking the probe)."""
        return self.down_since is None or (not self.probing and time.monotonic() >= self.open_until)

    def admit(self) -> bool:
        """Whether this caller may use Redis now: always while closed; while open, nobody
        until open_until, then one caller that probes it first (a PING with short timeouts
        of its own), and goes on to use it if the probe closed the circuit. A failed probe
        raises its error."""
        if self.down_since is None:  # closed: the hot path takes no lock
            return True
        with self._lock:
            if self.down_since is None:
                return True
            if self.probing or time.monotonic() < self.open_until:
                return False
            self.probing = True
        try:
            _probe()
        except REDIS_ERRORS as exc:
            self.failure(exc)
            raise  # the caller counts the error
        else:
            self.success()
            return True
        finally:
            self.probing = False

    def failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.open_until = now + BACKOFF_S
            if self.down_since is None:
                self.down_since = now
            self.unlogged_errors += 1
            if now - self.last_logged < LOG_EVERY_S:
                return
            errors, self.unlogged_errors, self.last_logged = self.unlogged_errors, 0, now
        if _embedded_redis_absent():
            # Expected for commands run beside no runall (migrate, make run's first steps).
            log.info("cache: the embedded Redis is not running (runall starts it); no cache")
            return
        log.warning(
            "cache: Redis unreachable (%s: %s); serving from the source, retrying every %.0f s "
            "(%d error(s) since the last message)",
            type(exc).__name__,
            exc,
            BACKOFF_S,
            errors,
        )

    def success(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            down_since, self.down_since = self.down_since, None
        if down_since is not None:
            log.warning("cache: Redis reachable again after %.1f s", time.monotonic() - down_since)

    def reset(self) -> None:
        with self._lock:
            self.open_until, self.down_since, self.probing = 0.0, None, False
            self.last_logged, self.unlogged_errors = float("-inf"), 0


def _embedded_redis_absent() -> bool:
    """The cache is meant to be on the embedded Redis, and no runall has started it."""
    socket_path = getattr(settings, "EMBEDDED_REDIS_SOCKET", None)
    return bool(getattr(settings, "EMBEDDED_REDIS", False)) and not (
        socket_path is not None and socket_path.exists()
    )


# The probe's own connection pool per cache client pool: the same server and credentials,
# short timeouts, no retries.
_probe_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _probe() -> None:
    """PING the cache's Redis, failing within PROBE_TIMEOUT_S (connect and answer each)."""
    if not uses_redis():
        return
    pool = _redis_client().connection_pool
    client = _probe_clients.get(pool)
    if client is None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs = {
            **pool.connection_kwargs,
            "socket_timeout": PROBE_TIMEOUT_S,
            "socket_connect_timeout": PROBE_TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0),
        }
        probe_pool = redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=2, **kwargs
        )
        client = _probe_clients[pool] = redis.Redis(connection_pool=probe_pool)
    client.ping()


class Unavailable(Exception):
    """Redis is skipped (circuit open) or failed: the caller does without it."""


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Around one use of Redis outside the strategies (counters, statistics): raises
    Unavailable at once while the circuit is open, or when the use fails (which opens it)."""
    try:
        admitted = _breaker.admit()
    except REDIS_ERRORS as exc:
        raise Unavailable from exc
    if not admitted:
        raise Unavailable
    try:
        yield
    except REDIS_ERRORS as exc:
        _breaker.failure(exc)
        raise Unavailable from exc
    else:
        _breaker.success()


_breaker = _Breaker()
_buffer = cache_metrics.Buffer()
_local_totals: dict[str, dict[str, int]] = {}  # metrics "store" without Redis
_generations: dict[str, tuple[int, float]] = {}
# Strategies with an invalidation that Redis missed while down: bumped once it is back, so
# that an outage never leaves a value cached that a write meant to remove.
_missed_invalidations: set[str] = set()
_last_flush = [time.monotonic()]
# Per-second history without Redis: {strategy: {epoch second: fields}}, this process only.
_local_history: dict[str, dict[int, dict[str, int]]] = {}


def _call(strategy: str, operation: Callable[[], T], *, timed: bool = True) -> T:
    """Run one backend operation under the breaker, timing it; raise _Down on failure."""
    try:
        admitted = _breaker.admit()
    except REDIS_ERRORS as exc:
        _buffer.count(strategy, "errors")
        raise _Down from exc
    if not admitted:
        _buffer.count(strategy, "bypassed")
        raise _Down
    started = time.perf_counter()
    try:
        result = operation()
    except REDIS_ERRORS as exc:
        _buffer.count(strategy, "errors")
        _breaker.failure(exc)
        raise _Down from exc
    else:
        _breaker.success()
    if timed:
        _buffer.latency(strategy, time.perf_counter() - started)
    _maybe_flush()
    return result


# --- strategies --------------------------------------------------------------------------


class Strategy:
    """One caching strategy: a key prefix with its own TTL, generation and metrics.

    Create them with `register()`, so that the Cache page, key counts and `clear_all` see them.
    """

    def __init__(
        self,
        name: str,
        *,
        ttl_setting: str | None = None,
        ttl: int | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.prefix = name
        self.ttl_setting = ttl_setting
        self.fixed_ttl = ttl
        self.description = description

    def __repr__(self) -> str:
        return f"Strategy({self.name!r})"

    @property
    def ttl(self) -> int:
        # Read at every use, so that a changed setting (override_settings) applies at once.
        if self.ttl_setting is not None:
            return int(getattr(settings, self.ttl_setting))
        return int(self.fixed_ttl or 0)

    def _declaration(self) -> tuple[str | None, int | None, str]:
        return (self.ttl_setting, self.fixed_ttl, self.description)

    @property
    def generation_key(self) -> str:
        return f"~gen:{self.name}"

    @property
    def epoch_key(self) -> str:
        # Counts the strategy's key and prefix invalidations: a value computed from a source
        # read before one of them is not stored after it (see _store_unless_invalidated).
        return f"~epoch:{self.name}"

    # keys

    def generation(self, *, fresh: bool = False) -> int:
        """The strategy's generation: memoised for GENERATION_MEMO_S, or read now (`fresh`).
        Reads never trust the memo alone: they fetch the generation with the value."""
        if _missed_invalidations and _breaker.allows():
            _replay_missed_invalidations()
        memo = _generations.get(self.name)
        now = time.monotonic()
        if not fresh and memo is not None and now - memo[1] < GENERATION_MEMO_S:
            return memo[0]
        value = _call(self.name, lambda: _backend().get(self.generation_key), timed=False)
        generation = int(value or 0)
        _generations[self.name] = (generation, now)
        return generation

    def _read_current(self, keys: list[str]) -> tuple[int, str, dict[str, Any]]:
        """The strategy's current generation and invalidation epoch, and {key: stored entry}
        of `keys` under that generation.

        The generation is read in the same round trip as the entries (MGET), so an
        invalidation made by any process is seen by the very next read in every process; the
        memo only guesses which generation's keys to ask for. A wrong guess (a bump since)
        costs one more round trip.
        """
        guess = self.generation()
        full_keys = {self._key(key, guess): key for key in keys}
        wanted = [self.generation_key, self.epoch_key, *full_keys]
        found = _call(self.name, lambda: _backend().get_many(wanted))
        current = int(found.get(self.generation_key) or 0)
        epoch = str(found.get(self.epoch_key) or "")
        _generations[self.name] = (current, time.monotonic())
        if current != guess:
            full_keys = {self._key(key, current): key for key in keys}
            found = _call(self.name, lambda: _backend().get_many(list(full_keys)))
        entries = {key: found[full_key] for full_key, key in full_keys.items() if full_key in found}
        return current, epoch, entries

    def _key(self, key: str, generation: int) -> str:
        return f"{self.prefix}:{generation}:{key}"

    def _entry(self, value: Any, ttl: int | None) -> tuple[_Entry, int]:
        ttl = self.ttl if ttl is None else ttl
        grace = min(ttl, STALE_GRACE_MAX_S)
        return _Entry(value, time.time() + ttl), ttl + grace

    def _count(self, counter: str, amount: int = 1) -> None:
        if amount:
            _buffer.count(self.name, counter, amount)

    # operations

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value under `key`, or `default` (stale values count as misses)."""
        if not settings.CACHE_ENABLED:
            return default
        try:
            entry = self._read_current([key])[2].get(key)
        except _Down:
            return default
        if isinstance(entry, _Entry) and entry.fresh:
            self._count("hits")
            return entry.value
        self._count("misses")
        return default

    def set(self, key: str, value: Any, ttl: int | None = None) -> bool:
        if not settings.CACHE_ENABLED:
            return False
        try:
            full_key = self._key(key, self.generation())
            entry, expiry = self._entry(value, ttl)
            _call(self.name, lambda: _backend().set(full_key, entry, timeout=expiry))
        except _Down:
            return False
        self._count("sets")
        return True

    def delete(self, key: str) -> bool:
        """Invalidate one key. False when Redis could not be reached."""
        if not settings.CACHE_ENABLED:
            return False
        try:
            # Read now, not memoised: a delete aimed at a generation just replaced would miss
            # a value another process already stored under the new one.
            full_key = self._key(key, self.generation(fresh=True))
            _call(self.name, lambda: _bump_and_delete(self.epoch_key, full_key))
        except _Down:
            _missed_invalidations.add(self.name)
            return False
        self._count("deletes")
        return True

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The fresh values of `keys` that are cached, in one round trip."""
        keys = list(keys)
        if not settings.CACHE_ENABLED or not keys:
            return {}
        try:
            found = self._read_current(keys)[2]
        except _Down:
            return {}
        values = {
            key: entry.value
            for key, entry in found.items()
            if isinstance(entry, _Entry) and entry.fresh
        }
        self._count("hits", len(values))
        self._count("misses", len(keys) - len(values))
        return values

    def set_many(self, values: Mapping[str, Any], ttl: int | None = None) -> bool:
        """Store several values in one round trip (a pipeline)."""
        if not settings.CACHE_ENABLED or not values:
            return False
        try:
            generation = self.generation()
            expiry = self._entry(None, ttl)[1]
            entries = {self._key(k, generation): self._entry(v, ttl)[0] for k, v in values.items()}
            _call(self.name, lambda: _backend().set_many(entries, timeout=expiry))
        except _Down:
            return False
        self._count("sets", len(entries))
        return True

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T],
        ttl: int | None = None,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> T:
        """The cached value, or compute() stored for next time.

        Stampede protection: one caller per key computes at a time (a short Redis lock);
        the others serve the stale value when there is one, or wait up to `wait_s` for the
        computed value, then compute themselves rather than fail.
        """
        if not settings.CACHE_ENABLED:
            return compute()
        try:
            generation, epoch, found = self._read_current([key])
        except _Down:
            return compute()
        full_key, entry = self._key(key, generation), found.get(key)
        if isinstance(entry, _Entry) and entry.fresh:
            self._count("hits")
            return entry.value
        if isinstance(entry, _Entry):  # stale: one caller refreshes, the others serve it
            if self._lock(full_key):
                self._count("misses")
                return self._compute_and_store(full_key, epoch, compute, ttl, locked=True)
            self._count("hits")
            self._count("stale")
            return entry.value
        self._count("misses")
        if self._lock(full_key):
            return self._compute_and_store(full_key, epoch, compute, ttl, locked=True)
        waited = self._wait_for(full_key, wait_s)
        if waited is not None:
            return waited.value
        return self._compute_and_store(full_key, epoch, compute, ttl, locked=False)

    def invalidate_prefix(self, prefix: str = "") -> int:
        """Delete the strategy's current keys that start with `prefix` (SCAN, never KEYS)."""
        if not settings.CACHE_ENABLED:
            return 0
        try:
            base = self._key(prefix, self.generation(fresh=True))  # as delete() does
            # The epoch first: a computation that read its source before this invalidation
            # must find it changed when it comes to store its value.
            _call(self.name, lambda: _increment(self.epoch_key), timed=False)
            deleted = _call(self.name, lambda: _delete_prefix(base))
        except _Down:
            _missed_invalidations.add(self.name)
            return 0
        self._count("deletes", deleted)
        return deleted

    def invalidate_all(self) -> int:
        """Bump the strategy's generation: every key it had is unreachable from now on."""
        try:
            generation = _call(self.name, lambda: _increment(self.generation_key), timed=False)
        except _Down:
            _missed_invalidations.add(self.name)
            return -1
        _missed_invalidations.discard(self.name)
        _generations[self.name] = (generation, time.monotonic())
        return generation

    # helpers

    def _lock(self, full_key: str) -> bool:
        lock_key = f"{full_key}:~lock"
        try:
            return bool(
                _call(
                    self.name,
                    lambda: _backend().add(lock_key, uuid.uuid4().hex, timeout=LOCK_TTL_S),
                    timed=False,
                )
            )
        except _Down:
            return True  # without Redis nobody else can coordinate either: compute

    def _unlock(self, full_key: str) -> None:
        with contextlib.suppress(_Down):
            _call(self.name, lambda: _backend().delete(f"{full_key}:~lock"), timed=False)

    def _wait_for(self, full_key: str, wait_s: float) -> _Entry | None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(WAIT_POLL_S)
            try:
                entry = _call(self.name, lambda: _backend().get(full_key), timed=False)
            except _Down:
                return None
            if isinstance(entry, _Entry):
                return entry
        return None

    def _compute_and_store(
        self,
        full_key: str,
        epoch: str,
        compute: Callable[[], T],
        ttl: int | None,
        *,
        locked: bool,
    ) -> T:
        try:
            value = compute()
            self._count("computes")
            entry, expiry = self._entry(value, ttl)
            try:
                stored = _call(
                    self.name,
                    lambda: _store_unless_invalidated(
                        self.epoch_key, epoch, full_key, entry, expiry
                    ),
                )
                if stored:
                    self._count("sets")
            except _Down:
                pass
            return value
        finally:
            if locked:
                self._unlock(full_key)


def _replay_missed_invalidations() -> None:
    for name in list(_missed_invalidations):
        STRATEGIES[name].invalidate_all()


# SET the value unless the strategy's invalidation epoch moved since the computation began.
_STORE_UNLESS_INVALIDATED = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


def _store_unless_invalidated(
    epoch_key: str, epoch: str, full_key: str, entry: _Entry, expiry: int
) -> bool:
    """Store a computed entry only if no key or prefix invalidation of its strategy happened
    since its source was read (`epoch`, read before): otherwise a request that read a batch
    as `calculating` just before the worker's commit would cache that after the worker's
    invalidation, for the whole TTL. Atomic in Redis (a script)."""
    backend = _backend()
    if not isinstance(backend, RedisCache):  # local memory: one process, no interleaving
        if str(backend.get(epoch_key) or "") != epoch:
            return False
        backend.set(full_key, entry, timeout=expiry)
        return True
    client = _redis_client()
    script = client.register_script(_STORE_UNLESS_INVALIDATED)
    keys = [str(backend.make_key(epoch_key)), str(backend.make_key(full_key))]
    encoded = backend.client.encode(entry)
    return bool(script(keys=keys, args=[epoch, encoded, max(1, int(expiry))], client=client))


def _bump_and_delete(epoch_key: str, full_key: str) -> None:
    backend = _backend()
    if not isinstance(backend, RedisCache):
        _increment(epoch_key)
        backend.delete(full_key)
        return
    with _redis_client().pipeline(transaction=True) as pipe:
        pipe.incr(str(backend.make_key(epoch_key)))
        pipe.delete(str(backend.make_key(full_key)))
        pipe.execute()


def _increment(key: str) -> int:
    backend = _backend()
    try:
        return int(backend.incr(key))
    except ValueError:  # no generation stored yet
        if backend.add(key, 1, timeout=None):
            return 1
        return int(backend.incr(key))


def delete_prefix(base: str) -> int:
    """Delete the backend's keys that start with `base`, outside any strategy (SCAN, never
    KEYS); raises the backend's errors (use it under `guarded()`)."""
    return _delete_prefix(base)


def _delete_prefix(base: str) -> int:
    backend = _backend()
    if isinstance(backend, RedisCache):
        return int(backend.delete_pattern(f"{glob_escape(base)}*", itersize=1000) or 0)
    # Local memory: walk the process's own keys (its private dict, under its lock).
    full_prefix = backend.make_key(base)
    with backend._lock:  # type: ignore[attr-defined]
        doomed = [key for key in backend._cache if key.startswith(full_prefix)]  # type: ignore[attr-defined]
        for key in doomed:
            backend._delete(key)  # type: ignore[attr-defined]
    return len(doomed)


# --- the registry ------------------------------------------------------------------------

# Every registered strategy by name, in registration order (the Cache page's order).
STRATEGIES: dict[str, Strategy] = {}

# A name is the strategy's key prefix: no ':' (key counts split stored keys on it), no glob
# characters (prefix deletion matches on it), short enough to read on the Cache page.
STRATEGY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def register(
    name: str,
    *,
    ttl_setting: str | None = None,
    ttl: int | None = None,
    description: str = "",
) -> Strategy:
    """Declare a strategy (its name is its key prefix) and return it.

    Exactly one of `ttl_setting` (the name of a setting holding seconds, read at every use)
    and `ttl` (seconds) gives its TTL. Registering the same declaration again returns the
    strategy already registered; a different one under a taken name is refused.
    """
    errors = strategy_errors(name, ttl_setting=ttl_setting, ttl=ttl)
    if errors:
        raise ValueError("; ".join(errors))
    strategy = Strategy(name, ttl_setting=ttl_setting, ttl=ttl, description=description)
    existing = STRATEGIES.get(name)
    if existing is not None:
        if existing._declaration() != strategy._declaration():
            raise ValueError(f"cache strategy {name!r} is already registered, differently")
        return existing
    STRATEGIES[name] = strategy
    return strategy


def strategy_errors(name: str, *, ttl_setting: str | None, ttl: int | None) -> list[str]:
    errors = []
    if not STRATEGY_NAME.fullmatch(name):
        errors.append(
            f"name: {name!r} must be 1 to 32 lowercase letters, digits, '_' or '-', "
            "starting with a letter"
        )
    if (ttl_setting is None) == (ttl is None):
        errors.append("ttl: give exactly one of ttl_setting and ttl")
    elif ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
        errors.append(f"ttl: {ttl!r} must be a whole number of seconds, at least 1")
    return errors


# --- metrics -------------------------------------------------------------------------------


def _metrics_key(name: str) -> str:
    return f"{_backend().key_prefix}:metrics:{name}"


def _maybe_flush() -> None:
    if time.monotonic() - _last_flush[0] >= METRICS_FLUSH_S:
        flush_metrics()
    else:
        _flush_later()


# One pending flush per process id: a forked worker inherits the dict but not the thread.
_flush_timers: dict[int, threading.Timer] = {}
_flush_timers_lock = threading.Lock()


def _flush_later(*, again: bool = False) -> None:
    """Flush within METRICS_FLUSH_S even if this process makes no further operation: the
    counts of a worker's last second (the end of a load test) would otherwise wait for its
    next request to reach the shared figures. `again`: from the timer whose flush failed."""
    pid = os.getpid()
    timer = _flush_timers.get(pid)
    if not again and timer is not None and timer.is_alive():
        return
    with _flush_timers_lock:
        timer = _flush_timers.get(pid)
        if not again and timer is not None and timer.is_alive():
            return
        timer = threading.Timer(METRICS_FLUSH_S, _flush_due)
        timer.daemon = True
        _flush_timers[pid] = timer
        timer.start()


def _flush_due() -> None:
    """The timer's flush: while Redis is away (down, or its circuit open) the counts given
    back try again each METRICS_FLUSH_S, so they land once it is back."""
    try:
        flushed = flush_metrics()
    except Exception:  # a timer thread: say it, rather than raise into nothing
        log.exception("cache: flushing the figures failed")
        return
    if not flushed:
        _flush_later(again=True)


def flush_metrics() -> bool:
    """Push this process's pending counts to the shared store. False if Redis is down."""
    _last_flush[0] = time.monotonic()
    pending = _buffer.take()
    if not pending:
        return True
    second = int(time.time())
    if not uses_redis():
        for name, fields in pending.items():
            _local_totals[name] = cache_metrics.merge_fields(_local_totals.get(name, {}), fields)
            _record_local_history(name, second, fields)
        return True
    try:
        with guarded():
            cache_metrics.flush_to_redis(_redis_client(), _metrics_key, pending)
            _flush_history(_redis_client(), pending, second)
    except Unavailable:
        _buffer.give_back(pending)  # counted again when Redis is back
        return False
    return True


# --- history: the same counts, per second, for the Cache page's charts ---------------------

HISTORY_S = 300  # the charts' window
HISTORY_TTL_S = HISTORY_S + 60


def _history_key(name: str, second: int) -> str:
    return f"{_backend().key_prefix}:metrics-history:{name}:{second}"


def _flush_history(client: Any, pending: Mapping[str, Mapping[str, int]], second: int) -> None:
    """Add a flush's counts to the hash of the second it happens in; each hash expires once
    out of the window. A process idle for a while stamps its counts at its next flush."""
    pipe = client.pipeline(transaction=False)
    for name, fields in pending.items():
        key = _history_key(name, second)
        for field, amount in fields.items():
            if amount:
                pipe.hincrby(key, field, amount)
        pipe.expire(key, HISTORY_TTL_S)
    pipe.execute()


def _record_local_history(name: str, second: int, fields: Mapping[str, int]) -> None:
    seconds = _local_history.setdefault(name, {})
    seconds[second] = cache_metrics.merge_fields(seconds.get(second, {}), fields)
    for old in [s for s in seconds if s <= second - HISTORY_S]:
        del seconds[old]


@dataclass(frozen=True)
class HistoryPoint:
    """One second of one strategy: its counts and the figures drawn from them."""

    second: int
    figures: StrategyFigures


def history(window_s: int = HISTORY_S, now: float | None = None) -> dict[str, list[HistoryPoint]]:
    """Every strategy's seconds with any count in the last `window_s` seconds, oldest first.
    Empty lists when Redis is unreachable: the page still shows the totals."""
    flush_metrics()
    end = int(time.time() if now is None else now)
    seconds = list(range(end - window_s + 1, end + 1))
    if uses_redis():
        stored = _read_history(seconds)
    else:
        stored = {
            name: {s: f for s, f in _local_history.get(name, {}).items() if s in set(seconds)}
            for name in STRATEGIES
        }
    return {
        name: [
            HistoryPoint(second, cache_metrics.figures_from_fields(fields))
            for second, fields in sorted(stored.get(name, {}).items())
            if fields
        ]
        for name in STRATEGIES
    }


def _read_history(seconds: list[int]) -> dict[str, dict[int, dict[str, int]]]:
    keys = {(name, second): _history_key(name, second) for name in STRATEGIES for second in seconds}
    try:
        with guarded():
            # One pipeline of HGETALLs: {(strategy, second): key}, read as the totals are.
            replies = cache_metrics.read_from_redis(_redis_client(), keys)
    except Unavailable:
        return {}
    stored: dict[str, dict[int, dict[str, int]]] = {}
    for (name, second), fields in replies.items():
        if fields:
            stored.setdefault(name, {})[second] = fields
    return stored


def figures() -> dict[str, StrategyFigures]:
    """Every strategy's figures: the shared totals plus this process's unflushed counts."""
    flush_metrics()
    if uses_redis():
        try:
            keys = {name: _metrics_key(name) for name in STRATEGIES}
            with guarded():
                stored = cache_metrics.read_from_redis(_redis_client(), keys)
        except Unavailable:
            stored = {}
    else:
        stored = _local_totals
    return {
        name: cache_metrics.figures_from_fields(
            cache_metrics.merge_fields(stored.get(name, {}), _buffer.peek(name))
        )
        for name in STRATEGIES
    }


def reset_metrics(names: Iterable[str] | None = None) -> None:
    """Zero the figures of some (or all) strategies, in Redis and in this process."""
    names = list(STRATEGIES if names is None else names)
    _buffer.clear(names)
    for name in names:
        _local_totals.pop(name, None)
        _local_history.pop(name, None)
    if uses_redis() and names:
        end = int(time.time())
        # The charts' seconds too (to a minute ahead, for a clock a little off).
        history_keys = [
            _history_key(name, second)
            for name in names
            for second in range(end - HISTORY_TTL_S, end + 60)
        ]
        with contextlib.suppress(Unavailable), guarded():
            _redis_client().delete(*(_metrics_key(name) for name in names), *history_keys)


def key_counts() -> dict[str, int | None]:
    """Keys of each strategy's current generation (None when Redis is unreachable)."""
    counts: dict[str, int | None] = dict.fromkeys(STRATEGIES, 0)
    try:
        current = {name: str(s.generation()) for name, s in STRATEGIES.items()}
        head = _backend().make_key("")
        with guarded():
            for key in _iter_keys(head):
                name, _, rest = key[len(head) :].partition(":")
                generation, _, tail = rest.partition(":")
                if (
                    name in counts
                    and current.get(name) == generation
                    and not tail.endswith(":~lock")
                ):
                    counts[name] = (counts[name] or 0) + 1
    except (_Down, Unavailable):
        return dict.fromkeys(STRATEGIES)
    return counts


def _iter_keys(head: str) -> Iterable[str]:
    backend = _backend()
    if isinstance(backend, RedisCache):
        client = _redis_client()
        for seen, key in enumerate(client.scan_iter(match=f"{glob_escape(head)}*", count=1000)):
            if seen >= KEY_COUNT_SCAN_LIMIT:
                return
            yield key.decode() if isinstance(key, bytes) else key
        return
    with backend._lock:  # type: ignore[attr-defined]
        keys = [key for key in backend._cache if key.startswith(head)]  # type: ignore[attr-defined]
    yield from keys


@dataclass(frozen=True)
class LayerState:
    backend: str
    shared: bool  # one cache and one set of figures for every process
    enabled: bool
    reachable: bool
    down_for_s: float | None


def _backend_name() -> str:
    if not uses_redis():
        return "local memory"
    if getattr(settings, "EMBEDDED_REDIS", False):
        return f"Redis, embedded ({settings.EMBEDDED_REDIS_SOCKET}, started by runall)"
    return "Redis"


def state() -> LayerState:
    down_since = _breaker.down_since
    return LayerState(
        backend=_backend_name(),
        shared=uses_redis(),
        enabled=settings.CACHE_ENABLED,
        reachable=down_since is None,
        down_for_s=None if down_since is None else time.monotonic() - down_since,
    )


def clear_all() -> None:
    """Delete every strategy's keys (all generations), generations and metrics."""
    backend = _backend()
    for name, strategy in STRATEGIES.items():
        try:
            _call(name, lambda s=strategy: _delete_prefix(f"{s.prefix}:"), timed=False)
            _call(name, lambda s=strategy: backend.delete(s.generation_key), timed=False)
            _call(name, lambda s=strategy: backend.delete(s.epoch_key), timed=False)
        except _Down:
            pass
    reset_metrics()
    reset_process_state()


def reset_process_state() -> None:
    """Forget breaker state, memoised generations and unflushed counts (tests, forks)."""
    _breaker.reset()
    _buffer.clear()
    _local_totals.clear()
    _local_history.clear()
    _generations.clear()
    _missed_invalidations.clear()


def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):  # best effort (the process may be ending)
        flush_metrics()


atexit.register(_flush_at_exit)
