"""Helpers for tests that drive the product's own processes (workers, runall)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from celery.result import AsyncResult


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> float:
    """Seconds until `predicate()` was true; fails after `timeout_s`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """The server answered with anything but a server error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


@dataclass
class Runall:
    """`manage.py runall` running in a subprocess, and the processes it started."""

    proc: subprocess.Popen[bytes]
    port: int
    target_port: int
    log: Path
    seen: set[psutil.Process] = field(default_factory=set)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target_url(self) -> str:
        return f"http://127.0.0.1:{self.target_port}"

    def child(self, name: str) -> psutil.Process | None:
        """The live process runall started for `name` (web, loadgen, worker, beat, target)."""
        for proc in psutil.Process(self.proc.pid).children():
            try:
                argv = " ".join(proc.cmdline())
                alive = proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                continue
            if alive and self._is(name, argv):
                self.seen.add(proc)
                return proc
        return None

    def _is(self, name: str, argv: str) -> bool:
        return {
            "web": f"127.0.0.1:{self.port}" in argv,
            "target": f"127.0.0.1:{self.target_port}" in argv,
            "loadgen": " worker " in argv and "loadgen@" in argv,
            "worker": " worker " in argv and "worker@" in argv,
            "beat": " beat " in argv,
        }[name]

    def descendants(self) -> list[psutil.Process]:
        """Every process below runall now, remembered so that `stop` can make sure of them."""
        found: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(self.proc.pid).children(recursive=True)
        self.seen.update(found)
        return found

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def quiet_output(self) -> str:
        """The output without the access log's request lines, which probes fill it with."""
        return "\n".join(line for line in self.output().splitlines() if '" 200 ' not in line)

    def stop(self) -> None:
        """SIGTERM to runall, as Ctrl-C would; then nothing it started may be left."""
        if self.proc.poll() is None:
            self.descendants()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for proc in self.seen:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def restarted(product: Any, name: str, old_pid: int) -> bool:
    """Whether runall's `name` process runs again under a new pid (asked once: it may die
    between two looks)."""
    proc = product.child(name)
    return proc is not None and proc.pid != old_pid


def send_task(broker_url: str, name: str, *args: Any) -> AsyncResult:
    """Send task `name` as the product does (its queues, routes, result backend), to the
    processes started with their own Redis at `broker_url`."""
    from offgridperf.celery import app

    # An explicit connection: Celery prefers the CELERY_BROKER_URL of the environment (the
    # suite's broker) to any broker_url set on an app.
    with app.connection_for_write(broker_url) as connection:
        result = app.send_task(name, args=list(args), connection=connection)
    # Read the result from that Redis too.
    return AsyncResult(result.id, backend=app.backend.__class__(app=app, url=broker_url))
