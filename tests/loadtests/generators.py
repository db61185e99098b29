"""Real load generators for tests: Celery workers on queue loadgen with their own node names,
against the test database and the test broker (the `generators` fixture starts none; a test
starts the ones it needs)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, loadgen_node, worker_env


class Generators:
    """Workers started by a test, by node-name prefix; each in its own process group so that
    killing one takes its pool process with it."""

    def __init__(self, database_name: str) -> None:
        self.database_name = database_name
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str, env: dict[str, str] | None = None, concurrency: int = 1) -> None:
        """Start workers `names`, each running `concurrency` load tests (or shards) at once."""
        from offgridperf.celery import app

        for name in names:
            node = f"{name}-{os.getpid()}@%h"
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "offgridperf", "worker", "-Q", "loadgen",
                 "-c", str(concurrency), "-l", "WARNING", "-n", node, "--without-gossip",
                 "--without-mingle"],
                cwd=ROOT,
                env={**worker_env(self.database_name), **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        wanted = {f"{name}-{os.getpid()}@" for name in names}
        while wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {wanted} did not answer a ping within 60 s")
            replies = app.control.ping(timeout=1.0)
            answered = {name for reply in replies for name in reply}
            wanted = {w for w in wanted if not any(a.startswith(w) for a in answered)}

    def node_prefix(self, name: str) -> str:
        return f"{name}-{os.getpid()}@"

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its pool: a lost machine, as far as the run can tell."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_group_gone(proc.pid)

    def stop(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The pool processes may outlive their parent for a moment, each with a database
        # session that would stop the test database from being dropped.
        for proc in self.procs.values():
            _wait_group_gone(proc.pid)
        self.procs.clear()


def _wait_group_gone(group: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


@pytest.fixture
def generators(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Generators]:
    from django.db import connection

    from offgridperf.celery import app

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    app.control.purge()
    # Other suites' session load generator (tests/conftest.py) also consumes loadgen: while
    # these tests run, only their own generators may take shards, so it stops meanwhile.
    others = [
        name
        for reply in app.control.ping(timeout=1.0)
        for name in reply
        if name.startswith(loadgen_node())
    ]
    if others:
        app.control.cancel_consumer("loadgen", destination=others, reply=True)
    started = Generators(database_name)
    try:
        yield started
    finally:
        started.stop()
        if others:
            app.control.add_consumer("loadgen", destination=others, reply=True)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.2)
