"""The database goes away in the middle of a load test: it refuses connections
(ALLOW_CONNECTIONS false) and every session it had is terminated, as when PostgreSQL restarts
or fails over. A run on a real load generator must lose none of its seconds through an
outage shorter than LOADTEST_DB_OUTAGE_BUFFER_S, and past that bound stop its load; in
neither case may the target receive load the run does not record.

The target counts what it receives (tests/loadtests/counting_target.py): a run's request
total is checked against it, and so is the load after the run's end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from loadtests import tasks
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep
from tests.loadtests.counting_target import CountingTarget
from tests.loadtests.generators import Generators, generators  # noqa: F401 - a fixture
from tests.processes import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_S = 10.0
RATE_RPS = 20
# Time for requests in flight as the run ended to arrive; none may arrive later.
AFTER_END_S = 2.0


@contextlib.contextmanager
def database_refusing_connections(name: str) -> Iterator[None]:
    """The database `name` refuses every new connection, and every session it had is cut."""
    settings = connection.settings_dict
    admin = psycopg.connect(
        dbname="postgres",
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"],
        port=settings["PORT"] or None,
        autocommit=True,
    )
    database = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))
        admin.close()
        # This process's own sessions were cut too: start afresh.
        connection.close()
        connection.close_pool()


@pytest.fixture
def target() -> Iterator[CountingTarget]:
    with CountingTarget() as served:
        yield served


def open_definition(
    target: CountingTarget, duration_s: int, *, shards: int = 1
) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name=f"database loss {duration_s}",
        target_base_url=target.url,
        load_model="open",
        rate_rps=RATE_RPS,
        duration_s=duration_s,
        timeout_s=3,
        threshold_error_rate_pct=1,
        shards=shards,
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def ended(run_id: int) -> bool:
    return LoadTestRun.objects.get(pk=run_id).status not in ("queued", "running")


def indexes(run: LoadTestRun) -> list[int]:
    return list(run.intervals.order_by("index").values_list("index", flat=True))


def test_a_run_loses_nothing_through_a_ten_second_database_outage(
    generators: Generators,  # noqa: F811
    target: CountingTarget,
    fault_report: Callable[[str], None],
) -> None:
    generators.start("gen-dbloss")
    duration = 20
    run = tasks.queue_run(open_definition(target, duration))
    wait_for(lambda: run.intervals.count() >= 3, 60, "three recorded seconds")
    with database_refusing_connections(connection.settings_dict["NAME"]):
        time.sleep(OUTAGE_S)
    wait_for(lambda: ended(run.pk), 90, "the run's end")
    run.refresh_from_db()
    time.sleep(AFTER_END_S)

    stored = indexes(run)
    after_end = target.count_after(run.finished_at.timestamp())
    fault_report(
        f"database refused connections {OUTAGE_S:g} s: run {run.status}, "
        f"{duration - len(stored)} of {duration} s lost, {after_end} requests after its end, "
        f"{run.requests} recorded of {target.count()} received"
    )
    assert run.status == "passed", run.status_reason
    assert stored == list(range(len(stored))), "a second is missing"
    assert duration <= len(stored) <= duration + 1
    assert run.requests == sum(run.intervals.values_list("requests", flat=True))
    assert run.requests == target.count()
    assert after_end == 0


def test_a_sharded_run_loses_nothing_through_a_ten_second_database_outage(
    generators: Generators,  # noqa: F811
    target: CountingTarget,
    fault_report: Callable[[str], None],
) -> None:
    generators.start("gen-dbloss-a", "gen-dbloss-b")
    duration = 16
    run = tasks.queue_run(open_definition(target, duration, shards=2))
    wait_for(lambda: run.intervals.count() >= 4, 60, "two recorded seconds of each shard")
    with database_refusing_connections(connection.settings_dict["NAME"]):
        time.sleep(OUTAGE_S)
    wait_for(lambda: ended(run.pk), 90, "the run's end")
    run.refresh_from_db()
    time.sleep(AFTER_END_S)

    per_shard = [
        list(run.intervals.filter(shard=shard).order_by("index").values_list("index", flat=True))
        for shard in (0, 1)
    ]
    after_end = target.count_after(run.finished_at.timestamp())
    fault_report(
        f"database refused connections {OUTAGE_S:g} s, 2 shards: run {run.status}, "
        f"seconds stored per shard {[len(indexes) for indexes in per_shard]} of {duration}, "
        f"{after_end} requests after its end, {run.requests} recorded of {target.count()}"
    )
    assert run.status == "passed", run.status_reason
    for indexes in per_shard:
        assert indexes == list(range(len(indexes))) and duration <= len(indexes) <= duration + 1
    assert run.requests == target.count()
    assert after_end == 0


def test_past_the_outage_bound_the_load_stops_and_the_run_ends_interrupted(
    generators: Generators,  # noqa: F811
    target: CountingTarget,
    fault_report: Callable[[str], None],
) -> None:
    bound_s = 3
    generators.start("gen-dbbound", env={"LOADTEST_DB_OUTAGE_BUFFER_S": str(bound_s)})
    run = tasks.queue_run(open_definition(target, 60))
    wait_for(lambda: run.intervals.count() >= 3, 60, "three recorded seconds")
    with database_refusing_connections(connection.settings_dict["NAME"]):
        cut_at = time.time()
        time.sleep(OUTAGE_S)
        received_in_outage = target.count()
    wait_for(lambda: ended(run.pk), 60, "the run's end")
    run.refresh_from_db()
    time.sleep(AFTER_END_S)

    # The engine stops within a second of the bound (margins for a loaded machine).
    late = target.count_after(cut_at + bound_s + 3)
    after_end = target.count_after(run.finished_at.timestamp())
    stored = indexes(run)
    fault_report(
        f"database refused connections {OUTAGE_S:g} s, bound {bound_s} s: run {run.status}, "
        f"{late} requests more than 3 s past the bound, {after_end} after its end"
    )
    assert run.status == "interrupted", run.status_reason
    assert "LOADTEST_DB_OUTAGE_BUFFER_S" in run.status_reason, run.status_reason
    assert late == 0 and after_end == 0
    assert target.count() == received_in_outage
    assert stored == list(range(len(stored))) and len(stored) >= 3
    assert run.requests == sum(run.intervals.values_list("requests", flat=True))
