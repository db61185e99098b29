from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loadtests import lifecycle, services
from loadtests.models import LoadTestDefinition, LoadTestStep, RunStatus
from queryopt.models import QueryTarget, SnapshotReason
from tests.conftest import closed_port
from tests.queryopt.targets.conftest import PASSWORD
from tests.targets import target_server


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    with target_server() as base_url:
        yield base_url


@pytest.fixture
def definition(db: Any, site_url: str) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="short", target_base_url=site_url, load_model="closed", users=1, duration_s=1
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def test_it_snapshots_each_enabled_target_when_a_run_starts_and_ends(
    definition: LoadTestDefinition, target: QueryTarget, target_dsn: str
) -> None:
    resting = QueryTarget.objects.create(name="resting", dsn=target_dsn, enabled=False)
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == RunStatus.PASSED
    taken = list(target.snapshots.order_by("taken_at", "pk"))
    assert [(s.reason, s.run_id) for s in taken] == [
        (SnapshotReason.RUN_START, run.pk),
        (SnapshotReason.RUN_END, run.pk),
    ]
    assert run.started_at <= taken[0].taken_at <= run.finished_at <= taken[1].taken_at
    assert set(run.statement_snapshots.all()) == set(taken)
    assert not resting.snapshots.exists()


def test_a_target_that_cannot_be_reached_never_fails_the_run(
    definition: LoadTestDefinition,
) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres"
    down = QueryTarget.objects.create(name="down", dsn=dsn)
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == RunStatus.PASSED
    down.refresh_from_db()
    assert down.last_error.startswith("cannot connect to")
    assert PASSWORD not in down.last_error
    assert not down.snapshots.exists()
