"""The product across several hosts: network namespaces the test creates and removes, joined
by veth cables to one switch. The hub holds web, the broker and the database (the machine's
PostgreSQL and Redis listen on loopback only: the hub forwards them from its own address), two
load generators have a host each, and the target has another. Every role starts through the
image's entrypoint, as a container would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from loadtests import services
from loadtests.engine.results import ms
from loadtests.models import (
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStep,
    RunShard,
    WorkerHeartbeat,
)
from stats.histogram import Histogram
from tests.conftest import ROOT, worker_env
from tests.deploy.environments import ENTRYPOINT
from tests.multihost.hosts import Network, inside
from tests.processes import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="ip netns needs root"),
]

LOADGENS = ("lg-a", "lg-b")
TARGET_PORT = 8080
WEB_PORT = 8000
# The promise of loadtests.housekeeping (a run is reaped within 15 s of its last heartbeat),
# with a margin for a loaded 2-core machine.
REAPED_WITHIN_S = 15 + 10


class Target:
    """The service under test, listening on the target host's address; notes each arrival."""

    def __init__(self, network: Network) -> None:
        self.arrivals: list[float] = []
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with lock:
                    arrivals.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        with inside(network.namespace("target")):
            self.server = ThreadingHTTPServer((network.address("target"), TARGET_PORT), Handler)
        network.sockets.append(self.server.socket)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{network.address('target')}:{TARGET_PORT}"

    def count_after(self, moment: float) -> int:
        return sum(1 for arrived in list(self.arrivals) if arrived > moment)


class Cluster:
    def __init__(self, network: Network, target: Target) -> None:
        self.network, self.target = network, target

    def node(self, host: str) -> str:
        return f"{self.network.prefix}-{host}@{socket.gethostname()}"


# The hosts' broker is a Redis database of their own: the suite's own load generator (started
# by other tests in this process, on the suite's broker) must never take a shard meant for them.
CLUSTER_BROKER_DB = 5


def cluster_broker_url(suite_broker_url: str) -> str:
    base, _, _ = suite_broker_url.rpartition("/")
    return f"{base}/{CLUSTER_BROKER_DB}"


def queue_on_cluster(definition: LoadTestDefinition) -> LoadTestRun:
    """What queue_run does for a sharded run, with its shard tasks sent to the hosts' broker."""
    from offgridperf.celery import app

    run = services.create_run(definition)
    broker = cluster_broker_url(os.environ["CELERY_BROKER_URL"])
    # An explicit connection: Celery prefers the environment's CELERY_BROKER_URL otherwise.
    with app.connection_for_write(broker) as connection:
        for index in range(run.shards):
            app.send_task(
                "loadtests.tasks.execute_shard",
                args=[run.pk, index],
                queue="loadgen",
                connection=connection,
            )
    return run


def host_env(network: Network, database_name: str, host: str, var: Path) -> dict[str, str]:
    """What a host's role gets: the hub's address for the database and the broker."""
    hub = network.address("hub")
    env = worker_env(database_name)
    env["CELERY_BROKER_URL"] = cluster_broker_url(env["CELERY_BROKER_URL"])
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env[name] = env[name].replace("127.0.0.1:5432", f"{hub}:5432")
        env[name] = env[name].replace("127.0.0.1:6379", f"{hub}:6379")
        assert hub in env[name], f"{name} must name 127.0.0.1 to be forwarded: {env[name]}"
    env.update(
        PYTHON=str(ROOT / ".venv" / "bin" / "python"),
        SECRET_KEY="several-hosts-secret-key-0123456789-abcdef",
        OFFGRIDPERF_VAR_DIR=str(var / host),
        CELERY_NODE_NAME=f"{network.prefix}-{host}",
        # Load goes to the target host and loopback only.
        LOADTEST_ALLOWED_HOSTS=f"{network.address('target')},127.0.0.1,localhost",
        ALLOWED_HOSTS=f"{hub},localhost",
        BIND_HOST=hub,
        PORT=str(WEB_PORT),
        # A load generator that lost the database stops its load after this long.
        LOADTEST_DB_OUTAGE_BUFFER_S="5",
    )
    return env


@pytest.fixture
def cluster(transactional_db: Any, settings: Any, tmp_path: Path) -> Iterator[Cluster]:
    """The hosts and their processes, for one test: they are gone (and with them their
    database sessions) before the test database is emptied for the next test."""
    from django.db import connection

    from offgridperf.celery import app

    if shutil.which("ip") is None:
        pytest.fail("the `ip` command is missing: install Debian's iproute2 (make test does)")
    database_name = connection.settings_dict["NAME"]
    app.control.purge()
    with app.connection_for_write(cluster_broker_url(os.environ["CELERY_BROKER_URL"])) as hosts:
        app.control.purge(connection=hosts)
    logs = tmp_path
    network = Network(logs)
    try:
        network.create(*LOADGENS, "target")
        network.forward("hub", 5432, ("127.0.0.1", 5432))
        network.forward("hub", 6379, ("127.0.0.1", 6379))
        target = Target(network)
        network.run("hub", [str(ENTRYPOINT), "web"], host_env(network, database_name, "hub", logs))
        for host in LOADGENS:
            env = host_env(network, database_name, host, logs)
            network.run(host, [str(ENTRYPOINT), "loadgen"], env)
        settings.LOADTEST_ALLOWED_HOSTS = [network.address("target"), "127.0.0.1", "localhost"]
        started = Cluster(network, target)
        for host in LOADGENS:
            node = started.node(host)
            # Ready: a worker records its heartbeat once it consumes its queues.
            up = WorkerHeartbeat.objects.filter(node=node).exists
            try:
                wait_for(up, 60, f"{node} up")
            except AssertionError:
                raise AssertionError(network.output(host)[-3000:]) from None
        yield started
    finally:
        network.destroy()


def definition(target_url: str, *, rate: float, duration_s: int) -> LoadTestDefinition:
    created = LoadTestDefinition.objects.create(
        name=f"several hosts {rate} {duration_s}",
        target_base_url=target_url,
        load_model="open",
        rate_rps=rate,
        duration_s=duration_s,
        timeout_s=2,
        shards=2,
    )
    LoadTestStep.objects.create(definition=created, name="ok", path="/ok")
    return created


def ended(run: LoadTestRun) -> bool:
    run.refresh_from_db()
    return not run.is_active


def healthz_from(network: Network, host: str, url: str) -> int:
    """The status of GET `url`, asked from inside `host`."""
    found: list[int] = []

    def ask() -> None:
        with inside(network.namespace(host)):
            request = urllib.request.Request(url, headers={"Host": "localhost"})
            with urllib.request.urlopen(request, timeout=5) as response:
                found.append(response.status)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    return found[0] if found else 0


def test_it_runs_two_shards_on_two_hosts_with_exact_merged_percentiles(cluster: Cluster) -> None:
    network = cluster.network
    # No default route anywhere: a host reaches its switch's subnet and its own loopback only.
    for host in (*LOADGENS, "target", "hub"):
        routes = subprocess.run(
            ["ip", "-n", network.namespace(host), "-4", "route", "show"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        assert routes and all(line.startswith(f"{network.subnet}.0/24") for line in routes), routes
    url = f"http://{network.address('hub')}:{WEB_PORT}/healthz"
    wait_for(lambda: healthz_from(network, "lg-a", url) == 200, 60, "web's /healthz from lg-a")

    started = time.time()
    run = queue_on_cluster(definition(cluster.target.url, rate=100, duration_s=5))
    wait_for(lambda: ended(run), 60, "the sharded run's end")

    assert run.status == "passed", run.status_reason
    shards = list(run.shard_rows.all())
    assert {s.worker_node for s in shards} == {cluster.node(h) for h in LOADGENS}
    intervals = list(run.intervals.all())
    assert {i.shard for i in intervals} == {0, 1}
    merged = Histogram()
    for interval in intervals:
        merged.merge(Histogram.decode(interval.latency_histogram))
    assert merged.total_count == run.requests == sum(s.requests for s in shards) > 0
    assert run.latency_p50_ms == ms(merged.value_at_percentile(50))
    assert run.latency_p95_ms == ms(merged.value_at_percentile(95))
    assert run.latency_p99_ms == ms(merged.value_at_percentile(99))
    # Every request the run counted crossed the cables to the target host.
    assert cluster.target.count_after(started) == run.requests


def test_it_interrupts_the_run_when_a_host_is_cut_off_and_leaves_no_load_once_back(
    cluster: Cluster,
) -> None:
    network = cluster.network
    run = queue_on_cluster(definition(cluster.target.url, rate=60, duration_s=40))
    wait_for(
        lambda: (
            RunShard.objects.filter(run=run, status="running").count() == 2
            and run.intervals.filter(shard__in=(0, 1)).values("shard").distinct().count() == 2
        ),
        60,
        "both shards running",
    )
    lost = RunShard.objects.get(run=run, worker_node=cluster.node("lg-b"))
    network.cut("lg-b")
    cut_at = time.monotonic()
    try:
        wait_for(lambda: ended(run), REAPED_WITHIN_S, "the run's end after a host was cut off")
        took_s = time.monotonic() - cut_at
    finally:
        network.restore("lg-b")
    restored_at = time.time()

    assert run.status == "interrupted", run.status_reason
    assert f"Shard {lost.index} on {cluster.node('lg-b')}" in run.status_reason
    assert took_s < REAPED_WITHIN_S
    kept = run.intervals.filter(shard=1 - lost.index)
    assert kept.count() >= 2
    assert run.requests == sum(i.requests for i in run.intervals.all()) > 0
    # Back on the network, neither host sends the ended run's load any more.
    quiet_from = restored_at + 3
    time.sleep(6)
    assert cluster.target.count_after(quiet_from) == 0
