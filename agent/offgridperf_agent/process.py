"""The process agent, the Python counterpart of Go's net/http/pprof.

Switched on by PROFILING_AGENT in the workbench's web, worker and target processes; any Python
service can run it with `offgridperf_agent.process.start(redis_url)` (it needs only redis-py,
not Django). Once on:

- `gc.callbacks` count collections, collected objects and pause time per generation;
- a daemon thread publishes those figures each second to Redis (a hash per process that
  expires a few seconds after the process stops publishing), and
- answers capture requests pushed to its command list: start tracemalloc (snapshot), stop it
  (snapshot again, compare, push the top growth by line and by traceback to the capture's
  result list).

Off, nothing of it runs: no callback, no thread. A fork (Celery prefork, gunicorn) starts a
fresh agent in the child, with its own pid and zeroed counts.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import threading
import time
import tracemalloc
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "offgridperf:agent"
PUBLISH_EVERY_S = 1.0
EXPIRE_S = 5
RESULT_EXPIRE_S = 600
TOP_LINES = 20
TOP_TRACEBACKS = 10
TRACEBACK_FRAMES = 10


def process_key(pid: int) -> str:
    return f"{PREFIX}:process:{pid}"


def commands_key(pid: int) -> str:
    return f"{PREFIX}:commands:{pid}"


def result_key(pid: int, capture_id: int) -> str:
    # The pid too: two installations on one Redis (or parallel test runs) number their
    # captures alike, and one must never take the other's answer.
    return f"{PREFIX}:result:{pid}:{capture_id}"


class GcStats:
    """Collections, collected objects and pause time per generation, from gc.callbacks."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.collected = [0, 0, 0]
        self.pause_ns = [0, 0, 0]
        self.max_pause_ns = 0
        self._started = 0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        generation = info.get("generation", 2)
        pause = time.perf_counter_ns() - self._started
        self.collections[generation] += 1
        self.collected[generation] += info.get("collected", 0)
        self.pause_ns[generation] += pause
        self.max_pause_ns = max(self.max_pause_ns, pause)

    def as_dict(self) -> dict[str, Any]:
        return {
            "collections": list(self.collections),
            "collected": list(self.collected),
            "pause_ms": [ns / 1e6 for ns in self.pause_ns],
            "max_pause_ms": self.max_pause_ns / 1e6,
        }


class Agent:
    def __init__(self, redis_url: str, role: str = "") -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.role = role
        self.pid = os.getpid()
        self.gc = GcStats()
        self._snapshots: dict[int, tracemalloc.Snapshot] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        gc.callbacks.append(self.gc.callback)
        self._thread = threading.Thread(target=self._loop, name="profiling-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.gc.callback in gc.callbacks:
            gc.callbacks.remove(self.gc.callback)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.publish()
                self.answer(wait_s=PUBLISH_EVERY_S)
                failing = False
            except Exception as exc:  # noqa: BLE001 - Redis down: retry, never kill the host
                if not failing:
                    log.warning("profiling agent (pid %s): %s", self.pid, exc)
                failing = True
                self._stop.wait(PUBLISH_EVERY_S)

    def publish(self) -> None:
        figures = {
            "pid": self.pid,
            "host": socket.gethostname(),
            "role": self.role,
            "at": time.time(),
            "gc": self.gc.as_dict(),
            "tracing": tracemalloc.is_tracing(),
        }
        key = process_key(self.pid)
        self.client.set(key, json.dumps(figures), ex=EXPIRE_S)

    def answer(self, wait_s: float) -> None:
        """Wait up to `wait_s` for a command and carry it out."""
        item = self.client.blpop([commands_key(self.pid)], timeout=wait_s)
        if item is None:
            return
        command = json.loads(item[1])
        capture = int(command["capture"])
        if command["op"] == "tracemalloc_start":
            if not tracemalloc.is_tracing():
                tracemalloc.start(int(command.get("frames", TRACEBACK_FRAMES)))
            self._snapshots[capture] = tracemalloc.take_snapshot()
            self._reply(capture, {"op": "started", "gc": self.gc.as_dict()})
        elif command["op"] == "tracemalloc_stop":
            self._reply(capture, {"op": "stopped", **self._growth(capture)})

    def _growth(self, capture: int) -> dict[str, Any]:
        first = self._snapshots.pop(capture, None)
        if first is None or not tracemalloc.is_tracing():
            return {"error": "tracemalloc was not started for this capture"}
        last = tracemalloc.take_snapshot()
        if not self._snapshots:
            tracemalloc.stop()
        ignore = [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
        ]
        first, last = first.filter_traces(ignore), last.filter_traces(ignore)
        return {
            "gc": self.gc.as_dict(),
            "by_line": [_stat(s) for s in last.compare_to(first, "lineno")[:TOP_LINES]],
            "by_traceback": [
                _stat(s) for s in last.compare_to(first, "traceback")[:TOP_TRACEBACKS]
            ],
        }

    def _reply(self, capture: int, message: dict[str, Any]) -> None:
        key = result_key(self.pid, capture)
        self.client.rpush(key, json.dumps(message))
        self.client.expire(key, RESULT_EXPIRE_S)


def _stat(stat: tracemalloc.StatisticDiff) -> dict[str, Any]:
    frames = [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback]
    return {
        "where": frames[-1] if frames else "?",
        "traceback": frames,
        "size_diff": stat.size_diff,
        "size": stat.size,
        "count_diff": stat.count_diff,
    }


_agent: Agent | None = None
_lock = threading.Lock()


def start(redis_url: str, role: str = "") -> Agent:
    """Start this process' agent (once; a forked child starts its own)."""
    global _agent
    with _lock:
        if _agent is None or _agent.pid != os.getpid():
            _agent = Agent(redis_url, role)
            _agent.start()
        return _agent


def current() -> Agent | None:
    return _agent if _agent is not None and _agent.pid == os.getpid() else None


def start_here_and_in_children(redis_url: str, role: str = "") -> Agent:
    """Start this process' agent, and a fresh one in every child forked from it (gunicorn,
    Celery prefork), with its own pid and zeroed counts."""
    agent = start(redis_url, role)
    os.register_at_fork(after_in_child=lambda: _restart_in_child(redis_url, role))
    return agent


def _restart_in_child(redis_url: str, role: str) -> None:
    global _agent
    if _agent is not None and _agent.gc.callback in gc.callbacks:
        gc.callbacks.remove(_agent.gc.callback)
    _agent = None
    start(redis_url, role)
