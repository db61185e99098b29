from __future__ import annotations

from typing import Any

from loadtests.engine import EngineConfig, Step


def step(path: str = "/ok", **fields: Any) -> Step:
    fields.setdefault("name", path.strip("/").split("?")[0].replace("/", "_") or "root")
    fields.setdefault("method", "GET")
    return Step(path=path, **fields)


def closed(
    base_url: str, *steps: Step, users: int = 1, duration_s: float = 1.0, **fields: Any
) -> EngineConfig:
    fields.setdefault("load_model", "closed")
    return EngineConfig(
        target_base_url=base_url,
        steps=steps or (step(),),
        users=users,
        duration_s=duration_s,
        **fields,
    )


def open_(
    base_url: str, *steps: Step, rate_rps: float = 100, duration_s: float = 1.0, **fields: Any
) -> EngineConfig:
    fields.setdefault("load_model", "open")
    return EngineConfig(
        target_base_url=base_url,
        steps=steps or (step(),),
        rate_rps=rate_rps,
        duration_s=duration_s,
        **fields,
    )
