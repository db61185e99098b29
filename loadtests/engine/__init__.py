"""The load generator: pure asyncio, no Django. A plain config in, interval snapshots out.

    from loadtests.engine import EngineConfig, Step, run
    config = EngineConfig(target_base_url="http://127.0.0.1:8000",
                          steps=(Step("home", "GET", "/"),),
                          load_model="open", rate_rps=200, duration_s=30)
    result = run(config, sink=print)

See runner.run for threading (the sink runs on an engine-owned thread) and cancellation.

A flow (mode="flow") runs its steps top to bottom once per iteration, with templates,
extractions and polls; `try_once` runs one iteration and shows every request:

    from loadtests.engine import Extraction, Poll, try_once
    steps = (
        Step("create", "POST", "/api/batches/", body='{"n": {{ random_int(1, 9) }}}',
             extract=(Extraction("batch_id", "json", "$.id"),)),
        Step("wait", "GET", "/api/batches/{{ batch_id }}/",
             poll=Poll(until_path="$.status", until_value="done", max_attempts=20)),
    )
    config = EngineConfig(target_base_url="http://127.0.0.1:8000", steps=steps, mode="flow",
                          load_model="closed", users=5, duration_s=30)
    for exchange in try_once(config):
        print(exchange["step"], exchange["status"], exchange["extracted"])
    result = run(config)  # result.iteration: the whole journey's histogram
"""

from __future__ import annotations

from loadtests.engine.config import (
    CLOSED,
    FLOW,
    MODES,
    OPEN,
    REQUESTS,
    EngineConfig,
    Extraction,
    Poll,
    Stage,
    Step,
)
from loadtests.engine.errors import ERROR_CLASSES
from loadtests.engine.flow import try_once
from loadtests.engine.results import IntervalSnapshot, Outcome, RunResult
from loadtests.engine.runner import ConfigError, run

__all__ = [
    "CLOSED",
    "ERROR_CLASSES",
    "FLOW",
    "MODES",
    "OPEN",
    "REQUESTS",
    "ConfigError",
    "EngineConfig",
    "Extraction",
    "IntervalSnapshot",
    "Outcome",
    "Poll",
    "RunResult",
    "Stage",
    "Step",
    "run",
    "try_once",
]
