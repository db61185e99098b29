"""How a sharded run's load is split: rates, users, stage targets and unique rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from loadtests import documents, lifecycle, services, shards
from loadtests.engine import EngineConfig, Step
from loadtests.engine.config import Stage
from loadtests.models import LoadTestDefinition, RunShard


def config(**changes: Any) -> EngineConfig:
    values: dict[str, Any] = {
        "target_base_url": "http://127.0.0.1:9",
        "steps": (Step(name="ok", method="GET", path="/ok"),),
        "load_model": "closed",
        "duration_s": 10,
        "users": 10,
    }
    return EngineConfig(**{**values, **changes})


def test_it_gives_the_remainder_of_users_to_the_first_shards() -> None:
    assert [shards.split_count(10, i, 3) for i in range(3)] == [4, 3, 3]
    assert sum(shards.split_count(7, i, 4) for i in range(4)) == 7


def test_it_divides_the_open_rate_and_its_stage_targets() -> None:
    base = config(
        load_model="open", rate_rps=300.0, stages=(Stage(5, 90), Stage(5, 300)), start_target=30
    )
    parts = [shards.split_config(base, i, 3) for i in range(3)]
    assert {p.rate_rps for p in parts} == {100.0}
    assert [s.target for s in parts[0].stages] == [30.0, 100.0]
    assert parts[2].start_target == 10
    assert sum(p.rate_rps for p in parts) == pytest.approx(300.0)


def test_it_splits_closed_users_and_stage_targets_as_whole_users() -> None:
    base = config(users=5, stages=(Stage(5, 3), Stage(5, 5)))
    parts = [shards.split_config(base, i, 2) for i in range(2)]
    assert [p.users for p in parts] == [3, 2]
    assert [[s.target for s in p.stages] for p in parts] == [[2, 3], [1, 2]]


def test_it_deals_unique_rows_out_so_no_row_is_used_twice() -> None:
    rows = tuple({"id": str(n)} for n in range(7))
    base = config(data_rows=rows, data_columns=("id",), data_order="unique")
    parts = [shards.split_config(base, i, 3) for i in range(3)]
    assert [[r["id"] for r in p.data_rows] for p in parts] == [
        ["0", "3", "6"],
        ["1", "4"],
        ["2", "5"],
    ]
    shared = config(data_rows=rows, data_columns=("id",), data_order="sequential")
    assert shards.split_config(shared, 1, 3).data_rows == rows


def test_it_leaves_a_single_shard_config_alone() -> None:
    base = config(load_model="open", rate_rps=50.0)
    assert shards.split_config(base, 0, 1) is base


def test_it_refuses_fewer_closed_users_than_shards() -> None:
    problems = shards.shard_problems({"shards": 3, "load_model": "closed", "users": 2})
    assert problems == {"shards": ["The closed model needs at least one user per shard (3)."]}
    assert shards.shard_problems({"shards": 3, "load_model": "open", "rate_rps": 1}) == {}


@pytest.mark.django_db
def test_it_creates_one_shard_row_per_shard(definition: LoadTestDefinition) -> None:
    definition.shards = 3
    definition.save()
    run = services.create_run(definition)
    assert run.shards == 3 and run.config["shards"] == 3
    assert list(RunShard.objects.filter(run=run).values_list("index", "status")) == [
        (0, "queued"),
        (1, "queued"),
        (2, "queued"),
    ]


@pytest.mark.django_db
def test_it_keeps_a_plain_run_unsharded(definition: LoadTestDefinition) -> None:
    run = services.create_run(definition)
    assert run.shards == 1 and not RunShard.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_it_refuses_a_sharded_closed_run_without_a_user_per_shard(
    definition: LoadTestDefinition,
) -> None:
    definition.shards = 8  # 4 users
    definition.save()
    with pytest.raises(documents.RunRefused) as refused:
        services.create_run(definition)
    assert "shards" in refused.value.message_dict


@pytest.mark.django_db
def test_it_queues_a_run_with_the_cli_shards_option(definition: LoadTestDefinition) -> None:
    from django.core.management import call_command

    from loadtests.models import LoadTestRun

    call_command("loadtest", "run", definition.name, "--shards", "2")
    run = LoadTestRun.objects.get(definition=definition)
    assert run.shards == 2 and run.shard_rows.count() == 2


@pytest.mark.django_db
def test_it_refuses_a_shard_count_out_of_range(definition: LoadTestDefinition) -> None:
    with pytest.raises(documents.RunRefused) as refused:
        services.create_run(definition, overrides={"shards": 0})
    assert refused.value.message_dict == {"shards": ["Shards must be a whole number from 1 to 64."]}


@pytest.mark.django_db
def test_it_lets_only_the_last_shard_task_of_an_ended_run_announce_its_end(
    definition: LoadTestDefinition,
) -> None:
    definition.shards = 2
    definition.save()
    run = services.create_run(definition)
    RunShard.objects.filter(run=run).update(worker_pid=1, heartbeat_at=timezone.now())
    run.status = "passed"
    run.save()
    first, second = run.shard_rows.all()
    assert lifecycle.leave(first) is False
    assert lifecycle.leave(second) is True


@pytest.mark.django_db
def test_it_interrupts_a_sharded_run_when_a_shards_worker_restarts(
    definition: LoadTestDefinition,
) -> None:
    definition.shards = 2
    definition.save()
    run = services.create_run(definition)
    run.status, run.worker_node = "running", "gen-a@host"  # the first shard's node
    run.save()
    now = timezone.now()
    RunShard.objects.filter(run=run, index=0).update(
        status="done", worker_node="gen-a@host", worker_pid=1, heartbeat_at=None
    )
    RunShard.objects.filter(run=run, index=1).update(
        status="running", worker_node="gen-b@host", worker_pid=2, heartbeat_at=now
    )

    assert lifecycle.reap_node_runs("gen-a@host") == []  # its shard had ended
    assert lifecycle.reap_node_runs("gen-b@host") == [run.pk]
    run.refresh_from_db()
    assert run.status == "interrupted"
    assert run.status_reason.startswith("Shard 1's worker gen-b@host restarted")
