from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.flow_server import FlowServer, flow_server
from tests.targets import target_server


@pytest.fixture(scope="session")
def target() -> Iterator[str]:
    """A local HTTP target (see tests/targets.py for its routes)."""
    with target_server() as base_url:
        yield base_url


@pytest.fixture
def freezing_target() -> Iterator[str]:
    """A target whose whole process stalls for 1 s every 3 s."""
    with target_server(freeze_every_s=3, freeze_ms=1000) as base_url:
        yield base_url


@pytest.fixture
def flow_target() -> Iterator[FlowServer]:
    """A fresh in-process server with a CSRF login form, pollable jobs and an echo."""
    with flow_server() as server:
        yield server
