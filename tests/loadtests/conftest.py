from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.targets import target_server

if TYPE_CHECKING:
    from loadtests.models import LoadTestDefinition


@pytest.fixture(scope="session")
def target_url() -> Iterator[str]:
    """A local HTTP target (/ok, /json, /delay, /status/NNN, /reset, /hang, ...)."""
    with target_server() as base_url:
        yield base_url


@pytest.fixture
def definition(db: Any, target_url: str) -> LoadTestDefinition:
    # Imported here: tests/loadtests/pure runs without Django's database.
    from loadtests.models import LoadTestDefinition, LoadTestStep

    definition = LoadTestDefinition.objects.create(
        name="smoke",
        target_base_url=target_url,
        load_model="closed",
        users=4,
        duration_s=2,
        timeout_s=2,
        threshold_p95_ms=1000,
        threshold_error_rate_pct=1,
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok", weight=3)
    LoadTestStep.objects.create(
        definition=definition,
        name="json",
        path="/json",
        check_type="json_equals",
        check_path="status",
        check_value='"ok"',
    )
    return definition
