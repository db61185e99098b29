"""Helpers for tests that drive the product's own processes (workers, runall)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery.result import AsyncResult


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> float:
    """Seconds until `predicate()` was true; fails after `timeout_s`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


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
