from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadtests import lifecycle, services
from loadtests.models import (
    Alert,
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStep,
    RunInterval,
    RunStatus,
    WorkerHeartbeat,
)
from loadtests.waiting import record_heartbeat
from offgridperf import metrics
from offgridperf.env import env_networks, env_token
from profiling.models import ProfileCapture
from tests.targets import target_server

# The families the product promises, by the name Prometheus shows.
FAMILIES = {
    "offgridperf_loadtest_requests",
    "offgridperf_loadtest_runs",
    "offgridperf_loadtest_running",
    "offgridperf_loadtest_latency_seconds",
    "offgridperf_workers_alive",
    "offgridperf_cache_requests",
    "offgridperf_db_pool_connections",
    "offgridperf_profile_captures",
    "offgridperf_slow_queries",
    "offgridperf_alerts_open",
}


def scrape(client: Any, **extra: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def target_url() -> Iterator[str]:
    with target_server() as base_url:
        yield base_url


@pytest.fixture
def definition(db: Any, target_url: str) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="smoke", target_base_url=target_url, users=2, duration_s=2, timeout_s=2
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def test_it_answers_loopback_and_refuses_other_addresses(client: Any, db: Any) -> None:
    assert client.get("/metrics").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
    assert b"METRICS_ALLOWED_IPS" in refused.content


def test_it_answers_a_configured_network(client: Any, db: Any, settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = env_networks("X", [], {"X": "10.0.0.0/8"})
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_it_answers_the_bearer_token_from_anywhere(client: Any, db: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    far = {"REMOTE_ADDR": "203.0.113.9"}
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}, **far).status_code
        == 200
    )
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer wrong"}, **far).status_code == 403
    )
    assert (
        client.get("/metrics", headers={"Authorization": "s3cret-token"}, **far).status_code == 403
    )


def test_a_token_that_is_not_ascii_is_refused_not_an_error(
    client: Any, db: Any, settings: Any
) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    headers = {"Authorization": "Bearer s3cr\u00e9t"}
    assert client.get("/metrics", headers=headers, REMOTE_ADDR="203.0.113.9").status_code == 403


def test_no_token_set_means_no_token_is_accepted(client: Any, db: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = None
    headers = {"Authorization": "Bearer "}
    assert client.get("/metrics", headers=headers, REMOTE_ADDR="203.0.113.9").status_code == 403


def test_a_bad_allowed_address_names_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS has 'nope'"):
        env_networks("METRICS_ALLOWED_IPS", [], {"METRICS_ALLOWED_IPS": "127.0.0.1,nope"})


def test_a_short_token_stops_start_up_without_being_shown() -> None:
    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN is too short") as caught:
        env_token("METRICS_TOKEN", 16, {"METRICS_TOKEN": "guessable"})
    assert "guessable" not in str(caught.value)
    assert env_token("METRICS_TOKEN", 16, {}) is None


def test_it_exposes_exactly_the_promised_families(client: Any, db: Any) -> None:
    response = client.get("/metrics")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert names == FAMILIES


def test_requests_total_grows_by_exactly_a_runs_request_count(
    client: Any, definition: LoadTestDefinition
) -> None:
    key = ("offgridperf_loadtest_requests_total", (("definition", "smoke"),))
    before = scrape(client).get(key, 0)
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run is not None and run.requests > 0
    after = scrape(client)
    assert after[key] - before == run.requests
    status = (("definition", "smoke"), ("status", run.status))
    assert after[("offgridperf_loadtest_runs_total", status)] == 1
    assert after[
        ("offgridperf_loadtest_latency_seconds", (("definition", "smoke"), ("quantile", "0.95")))
    ] == pytest.approx(run.latency_p95_ms / 1000)


def running_run(definition: LoadTestDefinition) -> LoadTestRun:
    return LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={},
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
    )


def second(run: LoadTestRun, index: int, p95_ms: float, shard: int = 0) -> None:
    RunInterval.objects.create(
        run=run,
        shard=shard,
        index=index,
        started_at=run.started_at + timedelta(seconds=index),
        requests=10,
        latency_p50_ms=p95_ms / 2,
        latency_p95_ms=p95_ms,
        latency_p99_ms=p95_ms * 2,
    )


def test_a_running_runs_latency_is_its_newest_second_worst_shard(
    client: Any, definition: LoadTestDefinition
) -> None:
    run = running_run(definition)
    second(run, 0, 100.0)
    p95 = ("offgridperf_loadtest_latency_seconds", (("definition", "smoke"), ("quantile", "0.95")))
    assert scrape(client)[p95] == pytest.approx(0.1)
    second(run, 1, 40.0, shard=0)
    second(run, 1, 60.0, shard=1)
    figures = scrape(client)
    assert figures[p95] == pytest.approx(0.06)
    assert figures[("offgridperf_loadtest_running", ())] == 1
    # A run counts in runs_total once it ended: a counter never goes down.
    assert not any(name == "offgridperf_loadtest_runs_total" for name, _ in figures)


def test_open_alerts_are_counted_by_kind_until_acknowledged(
    client: Any, definition: LoadTestDefinition
) -> None:
    run = running_run(definition)
    alert = Alert.objects.create(run=run, definition=definition, kind="threshold", message="x")
    key = ("offgridperf_alerts_open", (("kind", "threshold"),))
    assert scrape(client)[key] == 1
    assert scrape(client)[("offgridperf_alerts_open", (("kind", "regression"),))] == 0
    Alert.objects.filter(pk=alert.pk).update(acknowledged_at=timezone.now())
    assert scrape(client)[key] == 0


def test_captures_count_once_they_ended(client: Any, db: Any) -> None:
    ProfileCapture.objects.create(kind="cpu", status="running")
    ProfileCapture.objects.create(kind="cpu", status="done")
    ProfileCapture.objects.create(kind="memory", status="error")
    captures = {
        labels: value
        for (name, labels), value in scrape(client).items()
        if name == "offgridperf_profile_captures_total"
    }
    assert captures == {
        (("kind", "cpu"), ("status", "done")): 1,
        (("kind", "memory"), ("status", "error")): 1,
    }


def test_workers_alive_counts_fresh_heartbeats_by_queue(client: Any, db: Any) -> None:
    # Queues of this test's own: the suite's live workers beat for loadgen and default in the
    # same database, and may or may not be up while it runs.
    record_heartbeat("first@a", ["metrics-first"], timezone.now())
    record_heartbeat("second@a", ["metrics-second", "metrics-both"], timezone.now())
    record_heartbeat("third@a", ["metrics-both"], timezone.now())
    record_heartbeat("stale@a", ["metrics-first"], timezone.now())
    WorkerHeartbeat.objects.filter(node="stale@a").update(
        seen_at=timezone.now() - timedelta(hours=1)
    )
    figures = scrape(client)
    alive = {
        labels[0][1]: value
        for (name, labels), value in figures.items()
        if name == "offgridperf_workers_alive" and labels[0][1].startswith("metrics-")
    }
    assert alive == {"metrics-first": 1, "metrics-second": 1, "metrics-both": 2}


def test_cache_requests_come_by_strategy_and_result(client: Any, db: Any) -> None:
    names = {
        labels for name, labels in scrape(client) if name == "offgridperf_cache_requests_total"
    }
    results = {dict(labels)["result"] for labels in names}
    assert results == {"hit", "miss", "error"}


def test_no_label_holds_a_run_id_sql_or_url(client: Any, definition: LoadTestDefinition) -> None:
    run = running_run(definition)
    second(run, 0, 10.0)
    ProfileCapture.objects.create(kind="cpu", status="done", run=run)
    for _, labels in scrape(client):
        for label, value in labels:
            assert label not in ("run", "run_id", "sql", "url")
            assert "://" not in value and str(run.pk) != value


def test_a_scrape_makes_a_fixed_number_of_queries(
    definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    for _ in range(3):
        run = running_run(definition)
        second(run, 0, 10.0)
        second(run, 1, 10.0)
    ProfileCapture.objects.create(kind="cpu", status="done")
    with django_assert_num_queries(metrics.SCRAPE_QUERIES):
        generate_latest(metrics.registry())


def test_the_pool_reports_its_connections_by_state(client: Any, db: Any, settings: Any) -> None:
    states = {
        dict(labels)["state"]: value
        for (name, labels), value in scrape(client).items()
        if name == "offgridperf_db_pool_connections"
    }
    if settings.DATABASE_IS_POSTGRES and connection.pool is not None:
        assert set(states) == {"open", "idle", "busy", "waiting", "max"}
        assert states["max"] == settings.DB_POOL_MAX
        assert states["busy"] >= 0 and states["open"] >= states["idle"]
    else:
        assert set(states) == {"open"}
