"""The target of the profiling overhead bench: a WSGI app with no database, so that its
throughput is Python work and nothing else (PostgreSQL's noise would swamp a 1% effect).

Every request to `/` builds 200 small dicts with a little arithmetic and JSON-encodes them
(about a millisecond of pure Python: a view's serialisation, without the framework).
`/stats` answers this worker's pid and whether the agent and pyinstrument are on, so the
bench can check that a variant really runs what it says.

Two switches, read once at import (gunicorn loads the app in its worker, not in the master):

  BENCH_TARGET_AGENT=1         offgridperf_agent.process.start(REDIS_URL): gc callbacks + its thread
  BENCH_TARGET_PYINSTRUMENT=1  every request runs inside a pyinstrument Profiler (default
                               1 ms interval), started and stopped around the view; the
                               session of one request in RENDER_EVERY is rendered to text
                               (and discarded), the rest are dropped, so rendering is paid
                               for but does not dominate, as when a developer looks at some

    gunicorn --workers 1 --bind 127.0.0.1:8123 bench.profiling_target:app
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

ITEMS = 200
RENDER_EVERY = 100

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

AGENT_ON = os.environ.get("BENCH_TARGET_AGENT") == "1"
PYINSTRUMENT_ON = os.environ.get("BENCH_TARGET_PYINSTRUMENT") == "1"
_profiled = 0
_rendered = 0

if AGENT_ON:
    from offgridperf_agent import process as agent

    agent.start(os.environ["REDIS_URL"], role="bench-target")


def build_payload(seed: int) -> bytes:
    """200 records of a made-up emissions line, encoded: the view's work."""
    rows = []
    for index in range(ITEMS):
        quantity = (seed * 31 + index * 17) % 1000 / 10
        factor = 0.233 + (index % 7) * 0.011
        rows.append(
            {
                "id": index,
                "site": f"site-{index % 12}",
                "scope": 1 + index % 3,
                "quantity": quantity,
                "kg_co2e": round(quantity * factor, 4),
                "tags": ["bench", "overhead"],
            }
        )
    total = sum(row["kg_co2e"] for row in rows)
    return json.dumps({"count": ITEMS, "total_kg_co2e": round(total, 3), "rows": rows}).encode()


def view(environ: dict[str, Any]) -> tuple[str, bytes]:
    if environ.get("PATH_INFO") == "/stats":
        stats = {
            "pid": os.getpid(),
            "agent": AGENT_ON,
            "pyinstrument": PYINSTRUMENT_ON,
            "profiled": _profiled,
            "rendered": _rendered,
        }
        return "application/json", json.dumps(stats).encode()
    return "application/json", build_payload(len(environ.get("QUERY_STRING", "")))


def profiled_view(environ: dict[str, Any]) -> tuple[str, bytes]:
    global _profiled, _rendered
    from pyinstrument import Profiler

    profiler = Profiler()
    profiler.start()
    try:
        result = view(environ)
    finally:
        profiler.stop()
    _profiled += 1
    if _profiled % RENDER_EVERY == 0:
        profiler.output_text()
        _rendered += 1
    return result


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    handle = profiled_view if PYINSTRUMENT_ON else view
    content_type, body = handle(environ)
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
