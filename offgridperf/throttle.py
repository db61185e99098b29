"""Failure throttles: count failures per client address in a window on the shared cache, and
refuse the address once it has had too many, until the window ends.

The counts live in the cache (Redis, so every web process sees them; local memory without
it) under the cache layer's circuit breaker: while Redis is down nothing is counted and
nothing is refused (the throttle fails open; the breaker logs the outage). The client address
is the one django-axes locks logins on, so both throttles agree on who a client is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

from axes.helpers import get_client_ip_address
from django.core.cache import caches
from django.http import HttpRequest

from offgridperf import cache

log = logging.getLogger(__name__)

KEY_PREFIX = "throttle:"


@dataclass(frozen=True)
class FailureThrottle:
    """At most `limit` failures per address in `window_s` seconds (from its first failure)."""

    name: str
    limit: int
    window_s: int

    def _keys(self, address: str) -> tuple[str, str]:
        base = f"{KEY_PREFIX}{self.name}:{address}"
        return f"{base}:count", f"{base}:until"

    def retry_after(self, request: HttpRequest) -> int | None:
        """Seconds until the request's address may try again, or None when it may now."""
        count_key, until_key = self._keys(client_address(request))
        try:
            with cache.guarded():
                stored = caches[cache.CACHE_ALIAS].get_many([count_key, until_key])
        except cache.Unavailable:
            return None
        count, until = stored.get(count_key, 0), stored.get(until_key)
        if count < self.limit or until is None:
            return None
        left = until - time.time()
        return max(1, math.ceil(left)) if left > 0 else None

    def failure(self, request: HttpRequest) -> int:
        """Count one failure of the request's address; its failures in the window (0 when
        they cannot be counted)."""
        address = client_address(request)
        count_key, until_key = self._keys(address)
        backend = caches[cache.CACHE_ALIAS]
        try:
            with cache.guarded():
                # add() only sets a missing key: the first failure starts the window.
                backend.add(until_key, time.time() + self.window_s, timeout=self.window_s)
                backend.add(count_key, 0, timeout=self.window_s)
                try:
                    count = int(backend.incr(count_key))
                except ValueError:  # expired between add and incr: a new window
                    backend.add(count_key, 1, timeout=self.window_s)
                    count = 1
        except cache.Unavailable:
            return 0
        if count == self.limit:
            log.warning(
                "throttle %s: %d failures from %s within %d s; refusing it until the window ends",
                self.name,
                count,
                address,
                self.window_s,
            )
        return count


def client_address(request: HttpRequest) -> str:
    return get_client_ip_address(request) or "unknown"


def clear_all() -> None:
    """Forget every throttle's counts (tests)."""
    with contextlib.suppress(cache.Unavailable), cache.guarded():
        cache.delete_prefix(KEY_PREFIX)
