"""Tags each step's requests for the agent in the target: the run and the step, signed with
OFFGRIDPERF_AGENT_KEY (the format is the agent's: offgridperf_agent.tags)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from offgridperf_agent import tags

from loadtests.engine import EngineConfig


def tagging_on(document: Mapping[str, Any]) -> bool:
    """A run is tagged when its definition asks for it and the workbench has a key."""
    return bool(document.get("agent_tagging", True)) and bool(settings.OFFGRIDPERF_AGENT_KEY)


def tagged_config(config: EngineConfig, run_id: int, document: Mapping[str, Any]) -> EngineConfig:
    """`config` whose every step sends its signed run tag; as it is when tagging is off.

    Added when the run starts, never to the frozen config: the tag names the run."""
    if not tagging_on(document):
        return config
    key = settings.OFFGRIDPERF_AGENT_KEY
    steps = tuple(
        dataclasses.replace(
            step, headers={**step.headers, tags.HEADER: tags.sign(key, run_id, step.name)}
        )
        for step in config.steps
    )
    return dataclasses.replace(config, steps=steps)
