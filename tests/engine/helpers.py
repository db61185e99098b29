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
    fields.setdefault("model", "closed")
    return EngineConfig(
        base_url=base_url, steps=steps or (step(),), users=users, duration_s=duration_s, **fields
    )


def open_(
    base_url: str, *steps: Step, rate: float = 100, duration_s: float = 1.0, **fields: Any
) -> EngineConfig:
    fields.setdefault("model", "open")
    return EngineConfig(
        base_url=base_url, steps=steps or (step(),), rate=rate, duration_s=duration_s, **fields
    )
