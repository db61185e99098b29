"""The run page's shard table: where each shard ran, its rate and its clock offset."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from loadtests import services
from loadtests.models import LoadTestDefinition, RunInterval, RunShard


@pytest.mark.django_db
def test_it_shows_each_shard_and_warns_about_a_clock_offset(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    definition.shards = 2
    definition.save()
    run = services.create_run(definition)
    RunShard.objects.filter(run=run, index=0).update(
        status="running", worker_node="gen-a@host1", worker_host="host1", clock_offset_ms=3.0
    )
    RunShard.objects.filter(run=run, index=1).update(
        status="running", worker_node="gen-b@host2", worker_host="host2", clock_offset_ms=-75.5
    )
    for shard, requests in ((0, 40), (1, 60)):
        RunInterval.objects.create(
            run=run, shard=shard, index=0, started_at=timezone.now(), requests=requests
        )

    page = admin_client.get(f"/runs/{run.pk}/").content.decode()

    assert page.count('data-shard="') == 2
    assert "gen-a@host1" in page and "gen-b@host2" in page
    assert "<td>60.0</td>" in page  # shard 1's achieved req/s from its stored second
    assert "Shard 1's clock is -75.5 ms off" in page
    assert "Shard 0's clock" not in page


@pytest.mark.django_db
def test_it_shows_no_shard_table_for_an_unsharded_run(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = services.create_run(definition)
    assert 'id="shards"' not in admin_client.get(f"/runs/{run.pk}/").content.decode()
