"""The third-party shop (tests/agent/thirdparty) for the agent_overhead benchmark: served with
and without the agent by one process, which counts each variant's CPU time per request.

Two Django handlers share the process: one built with `offgridperf_agent`'s middleware first
in MIDDLEWARE, one without it. The X-Bench-Variant header picks one per request, so the
benchmark interleaves the variants request by request and whatever else the machine does falls
on all of them alike. Each request's CPU time is the serving thread's (`time.thread_time_ns`)
from the call into the handler until its response is consumed and closed, which includes
Django's end-of-request work. `GET /__bench__` reads the counts, each request's CPU time since the
last reading, the process' CPU time (every thread: gunicorn's own work and the agent's
publishing thread too) and the publishing thread's CPU time.

Without the middleware the agent is still an installed app: its cache instrumentation is
process wide, but the benchmark's view makes no cache call, so it costs that variant nothing.

    gunicorn --workers 1 bench.agent_target:application   (PYTHONPATH: the shop and the repo)
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

AGENT_MIDDLEWARE = "offgridperf_agent.middleware.AgentMiddleware"
VARIANT_META = "HTTP_X_BENCH_VARIANT"
# Two variants without the agent, alike: their difference is the A/A noise floor.
VARIANTS = ("off", "off again", "untagged", "tagged")
REPORT_PATH = "/__bench__"
PUBLISHER_THREAD = "offgridperf-agent"


@functools.cache
def handlers() -> dict[str, WSGIHandler]:
    """Each variant's handler, built on the first request (the benchmark imports the names
    above without setting Django up)."""
    django.setup(set_prefix=False)
    with_agent = WSGIHandler()
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != AGENT_MIDDLEWARE]
    without_agent = WSGIHandler()
    return {"off": without_agent, "off again": without_agent, "untagged": with_agent,
            "tagged": with_agent}  # fmt: skip


_lock = threading.Lock()
# variant -> [requests, CPU ns]
_figures: dict[str, list[int]] = {name: [0, 0] for name in VARIANTS}
# variant -> each request's CPU ns since the last report
_samples: dict[str, list[int]] = {name: [] for name in VARIANTS}


def _thread_cpu_ns(name: str) -> int:
    """CPU time of this process' thread called `name` (0 when it is not running)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            try:
                stat = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
            except OSError:
                return 0
            return int(stat.split()[0])
    return 0


def _report(start_response: Callable[..., Any]) -> Iterable[bytes]:
    with _lock:
        figures = {name: list(values) for name, values in _figures.items()}
        samples = {name: list(values) for name, values in _samples.items()}
        for values in _samples.values():
            values.clear()
    body = json.dumps({
        "variants": figures,
        "samples": samples,
        "process_cpu_ns": time.process_time_ns(),
        "publisher_cpu_ns": _thread_cpu_ns(PUBLISHER_THREAD),
    }).encode()  # fmt: skip
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == REPORT_PATH:
        return _report(start_response)
    variant = environ.get(VARIANT_META, "off")
    handler = handlers()[variant]
    started = time.thread_time_ns()
    response = handler(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    spent = time.thread_time_ns() - started
    with _lock:
        figures = _figures[variant]
        figures[0] += 1
        figures[1] += spent
        _samples[variant].append(spent)
    return [body]
