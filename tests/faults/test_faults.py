"""Kill one part of the running product in the middle of a load test, and check that nothing
recorded is lost, that the run ends in the right state, and that the rest kept serving.

The bounds on gaps are generous on purpose (busy CI machines): the exact figures are
reported, not asserted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from emissions import seeding
from emissions.models import ActivityBatch
from loadtests.models import LoadTestRun
from tests.faults.conftest import (
    Prober,
    Product,
    WebSession,
    open_model_definition,
    post_to_target,
    recorded_indexes,
    wait_for,
)
from tests.processes import restarted

OUTAGE_S = 3.0
RUN_END_GRACE_S = 90


def wait_for_intervals(run: LoadTestRun, count: int) -> None:
    wait_for(lambda: run.intervals.count() >= count, 60, f"{count} seconds recorded by {run.pk}")


def wait_for_end(run: LoadTestRun, timeout_s: float = RUN_END_GRACE_S) -> LoadTestRun:
    wait_for(
        lambda: LoadTestRun.objects.get(pk=run.pk).status not in ("queued", "running"),
        timeout_s,
        f"the end of run {run.pk}",
    )
    run.refresh_from_db()
    return run


def assert_intervals_kept(run: LoadTestRun, recorded_before_fault: int) -> list[int]:
    indexes = recorded_indexes(run)
    assert indexes == list(range(len(indexes))), "a recorded second is missing"
    assert len(indexes) >= recorded_before_fault
    assert run.requests == sum(run.intervals.values_list("requests", flat=True))
    return indexes


def assert_verdict_follows_its_rules(run: LoadTestRun) -> None:
    assert run.status in ("passed", "failed"), (run.status, run.status_reason)
    assert run.threshold_results, "the verdict names no rule"
    assert (run.status == "passed") == all(item["passed"] for item in run.threshold_results)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_rides_out_the_loss_of_the_cache_and_broker_redis_mid_run(
    ready_product: Product, web: WebSession, fault_report: Callable[[str], None]
) -> None:
    product = ready_product
    definition = open_model_definition(product, name="redis-loss", duration_s=20)
    batch = ActivityBatch.objects.get(pk=seeding.seed(100)[0].pk)
    names = ("web", "loadgen", "worker", "beat", "target")
    pids = {name: product.child(name).pid for name in names}
    with Prober(product.web_probe_url) as web_probe, Prober(product.target_probe_url) as target:
        run = web.run_now(definition)
        wait_for_intervals(run, 3)
        before = run.intervals.count()

        product.redis.stop()
        killed_at = time.monotonic()
        # "Run now" while the broker is down: a clear refusal and the run row kept, no 500.
        refused = web.run_now(definition)
        refused.refresh_from_db()
        # The target's one write that needs the broker: refused, with the batch as it was.
        calculate_status = post_to_target(product, f"/api/batches/{batch.pk}/calculate/")
        time.sleep(max(0.0, killed_at + OUTAGE_S - time.monotonic()))
        product.redis.start()  # same port, empty: whatever the broker held is gone

        run = wait_for_end(run)
        settled_after = time.monotonic() - killed_at
    # The same processes rode it out: none crashed or needed runall's restart.
    assert {name: product.child(name).pid for name in pids} == pids
    assert "Unrecoverable error" not in product.output()

    assert refused.status == "error" and "broker" in refused.status_reason, refused.status_reason
    assert calculate_status == 503
    assert batch.status == "done"
    assert ActivityBatch.objects.get(pk=batch.pk).status == "done"
    indexes = assert_intervals_kept(run, before)
    planned = definition.duration_s
    assert planned <= len(indexes) <= planned + 1  # one per second of the schedule, none lost
    # At most a few seconds of 20 can fail: the 50% error-rate threshold cannot be crossed.
    assert_verdict_follows_its_rules(run)
    assert run.status == "passed", run.status_reason
    assert target.longest_gap_s < 5.0
    assert web_probe.longest_gap_s < 10.0

    # The worker consumes again once Redis is back: a new run starts and completes.
    resumed = wait_for_end(web.run_now(open_model_definition(product, name="after", duration_s=2)))
    assert resumed.status == "passed", resumed.status_reason
    fault_report(
        f"Redis killed {OUTAGE_S:g} s: longest gap web {web_probe.longest_gap_s:.2f} s, "
        f"target {target.longest_gap_s:.2f} s; run {run.status} with {len(indexes)} intervals "
        f"{settled_after:.1f} s after the kill; Run now during the outage: {refused.status}"
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_leaves_its_run_interrupted_with_every_second_kept(
    ready_product: Product, web: WebSession, fault_report: Callable[[str], None]
) -> None:
    product = ready_product
    definition = open_model_definition(product, name="worker-kill", duration_s=60)
    with Prober(product.web_probe_url) as web_probe, Prober(product.target_probe_url) as target:
        run = web.run_now(definition)
        wait_for_intervals(run, 3)
        worker = product.child("loadgen")
        before = run.intervals.count()

        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        run = wait_for_end(run, timeout_s=45)
        settled_after = time.monotonic() - killed_at
    indexes = assert_intervals_kept(run, before)
    assert run.status == "interrupted", run.status_reason
    assert len(indexes) < definition.duration_s
    assert target.longest_gap_s < 5.0
    assert web_probe.longest_gap_s < 10.0
    wait_for(
        lambda: restarted(product, "loadgen", worker.pid),
        60,
        "the worker's restart",
    )
    fault_report(
        f"worker SIGKILL: longest gap web {web_probe.longest_gap_s:.2f} s, "
        f"target {target.longest_gap_s:.2f} s; run {run.status} with {len(indexes)} intervals "
        f"{settled_after:.1f} s after the kill"
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_completes_while_the_web_server_is_killed_and_restarted(
    ready_product: Product, web: WebSession, fault_report: Callable[[str], None]
) -> None:
    product = ready_product
    definition = open_model_definition(product, name="web-kill", duration_s=15)
    with Prober(product.web_probe_url) as web_probe, Prober(product.target_probe_url) as target:
        run = web.run_now(definition)
        wait_for_intervals(run, 3)
        before = run.intervals.count()
        server = product.child("web")

        server.send_signal(signal.SIGTERM)
        killed_at = time.monotonic()
        wait_for(
            lambda: restarted(product, "web", server.pid),
            30,
            "the web server's restart",
        )
        back_after = wait_for(lambda: web_probe.answered[-1] > killed_at + 0.5, 30, "its answer")
        run = wait_for_end(run)
        settled_after = time.monotonic() - killed_at
    indexes = assert_intervals_kept(run, before)
    planned = definition.duration_s
    assert planned <= len(indexes) <= planned + 1
    assert run.status == "passed", run.status_reason
    assert web_probe.longest_gap_s < 30.0
    assert target.longest_gap_s < 5.0
    fault_report(
        f"web SIGTERM: longest gap web {web_probe.longest_gap_s:.2f} s "
        f"(answering {back_after:.1f} s after the restart), target {target.longest_gap_s:.2f} s; "
        f"run {run.status} with {len(indexes)} intervals {settled_after:.1f} s after the kill"
    )
