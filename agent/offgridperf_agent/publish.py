"""Publishes a process' per (run, step, second) figures to Redis once a second.

One pipeline a second: each finished second's message is pushed onto its run's list, and the
list's TTL renewed, so figures a workbench never collects disappear on their own.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from offgridperf_agent.aggregate import Aggregator

log = logging.getLogger(__name__)

PREFIX = "offgridperf:agent"
PUBLISH_EVERY_S = 1.0
TTL_S = 3600


def run_key(run_id: int) -> str:
    """The Redis list a run's per-second messages are pushed onto."""
    return f"{PREFIX}:run:{run_id}"


class Publisher:
    def __init__(self, redis_url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.aggregator = Aggregator()
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="offgridperf-agent", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(PUBLISH_EVERY_S):
            try:
                self.publish(int(time.time()))
                failing = False
            except Exception as exc:  # noqa: BLE001 - Redis away: never harm the host
                if not failing:
                    log.warning("offgridperf agent (pid %s): %s", self.pid, exc)
                failing = True

    def publish(self, before_second: int | None = None) -> int:
        """Push every finished second (all when None); returns how many messages."""
        messages = self.aggregator.take(before_second)
        if not messages:
            return 0
        by_run: dict[int, list[dict[str, Any]]] = {}
        for message in messages:
            by_run.setdefault(message["run"], []).append(message)
        pipe = self.client.pipeline(transaction=False)
        for run_id, items in by_run.items():
            pipe.rpush(run_key(run_id), *(json.dumps(item) for item in items))
            pipe.expire(run_key(run_id), TTL_S)
        pipe.execute()
        return len(messages)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.publish()


_publisher: Publisher | None = None
_lock = threading.Lock()


def publisher(redis_url: str) -> Publisher:
    """This process' publisher, started on first use (a forked child starts its own)."""
    global _publisher
    current = _publisher
    if current is not None:
        return current
    with _lock:
        if _publisher is None:
            _publisher = Publisher(redis_url)
        return _publisher


def _forget_in_child() -> None:
    """A forked child has none of its parent's threads: it starts a publisher of its own on
    its first tagged request (so the request's path never asks for its pid)."""
    global _publisher, _lock
    _publisher, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
