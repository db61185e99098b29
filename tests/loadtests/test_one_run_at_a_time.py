"""A load generator runs one load test at a time: two runs on one worker would each distort the
other's figures. A second run waits in the queue, and says behind which run it waits."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from loadtests import tasks, workerhooks
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep
from tests.loadtests.generators import Generators, generators  # noqa: F401 - a fixture
from tests.processes import wait_for


def closed_definition(target_url: str, name: str, duration_s: int) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name=name, target_base_url=target_url, load_model="closed", users=2, duration_s=duration_s
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def status(run: LoadTestRun) -> str:
    return LoadTestRun.objects.values_list("status", flat=True).get(pk=run.pk)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_second_run_waits_for_the_generator_and_says_behind_which_run(
    generators: Generators,  # noqa: F811
    target_url: str,
    admin_client: Any,
) -> None:
    generators.start("gen-one")
    first = tasks.queue_run(closed_definition(target_url, "first", 8))
    wait_for(lambda: status(first) == "running", 60, "the first run's start")
    second = tasks.queue_run(closed_definition(target_url, "second", 3))

    message = f"Waiting for a load generator: busy with run #{first.pk}."

    def says_behind_the_first() -> bool:
        live = admin_client.get(f"/runs/{second.pk}/live/").json()
        return live["waiting"] is not None and live["waiting"]["message"].startswith(message)

    # Within seconds: the generators of other tests may still be counted until they beat.
    wait_for(says_behind_the_first, 6, "the message naming the first run")
    assert message in admin_client.get(f"/runs/{second.pk}/").content.decode()
    assert (status(first), status(second)) == ("running", "queued")

    wait_for(lambda: status(second) not in ("queued", "running"), 60, "the second run's end")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("passed", "passed"), second.status_reason
    assert second.started_at >= first.finished_at  # never both at once
    assert admin_client.get(f"/runs/{second.pk}/live/").json()["waiting"] is None


@pytest.mark.parametrize(
    ("queues", "concurrency", "expected"),
    [
        (["loadgen"], None, (1, 1)),  # a load generator: one load test at a time
        (["loadgen"], 2, (8, 1)),  # unless -c says otherwise
        (["default", "loadgen"], None, (8, 4)),  # a general worker keeps Celery's defaults
    ],
)
def test_a_worker_on_the_run_queue_alone_defaults_to_one_load_test_at_a_time(
    queues: list[str], concurrency: int | None, expected: tuple[int, int]
) -> None:
    conf = SimpleNamespace(worker_concurrency=8, worker_prefetch_multiplier=4)
    workerhooks.one_load_test_at_a_time(
        "node", conf=conf, options={"queues": queues, "concurrency": concurrency}
    )
    assert (conf.worker_concurrency, conf.worker_prefetch_multiplier) == expected
