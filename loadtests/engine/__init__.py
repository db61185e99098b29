"""The load generator: pure asyncio, no Django. A plain config in, interval snapshots out.

    from loadtests.engine import EngineConfig, Step, run
    config = EngineConfig(base_url="http://127.0.0.1:8000", steps=(Step("home", "GET", "/"),),
                          model="open", rate=200, duration_s=30)
    result = run(config, sink=print)

See runner.run for threading (the sink runs on an engine-owned thread) and cancellation.
"""

from __future__ import annotations

from loadtests.engine.config import CLOSED, OPEN, EngineConfig, Stage, Step
from loadtests.engine.errors import ERROR_CLASSES
from loadtests.engine.report import IntervalSnapshot, RunResult
from loadtests.engine.runner import ConfigError, run

__all__ = [
    "CLOSED",
    "ERROR_CLASSES",
    "OPEN",
    "ConfigError",
    "EngineConfig",
    "IntervalSnapshot",
    "RunResult",
    "Stage",
    "Step",
    "run",
]
