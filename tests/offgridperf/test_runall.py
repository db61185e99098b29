"""runall as a supervisor: real processes, real signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, WorkerHeartbeat
from offgridperf.management.commands.runall import (
    STOP_GRACE_S,
    Backoff,
    product_processes,
)
from tests.cache_redis import private_redis_server
from tests.conftest import ROOT, closed_port, worker_env
from tests.processes import Runall, answers, restarted, send_task, wait_for
from tests.targets import target_server

START_TIMEOUT_S = 90


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Product(Runall):
    """runall against the test database and a private Redis."""

    broker_url: str = ""

    @property
    def web_health(self) -> str:
        return f"{self.web_url}/healthz"

    @property
    def target_health(self) -> str:
        return f"{self.target_url}/healthz"

    def ports(self) -> tuple[int, int]:
        """The web server's and the demo target's."""
        return self.port, self.target_port


def worker_alive() -> bool:
    return WorkerHeartbeat.objects.count() >= 2  # the load generator and the worker


@pytest.fixture
def product(transactional_db: Any, tmp_path: Path) -> Iterator[Product]:
    from django.db import connection

    with private_redis_server() as redis:
        env = worker_env(connection.settings_dict["NAME"])
        broker_url = redis.url.replace("/0", "/1")
        env.update(
            REDIS_URL=redis.url,
            CELERY_BROKER_URL=broker_url,
            PORT=str(closed_port()),
            TARGET_PORT=str(closed_port()),
            OFFGRIDPERF_LOCAL="1",
            PYTHONUNBUFFERED="1",
        )
        log = tmp_path / "runall.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "runall"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        product = Product(
            proc, int(env["PORT"]), int(env["TARGET_PORT"]), log, broker_url=broker_url
        )
        try:
            wait_for(
                lambda: (
                    answers(product.web_health)
                    and answers(product.target_health)
                    and worker_alive()
                    and product.child("beat") is not None
                ),
                START_TIMEOUT_S,
                "runall's start",
            )
            product.descendants()
            yield product
        finally:
            product.stop()


def test_it_starts_as_many_one_at_a_time_generators_as_runall_loadgen_workers(
    settings: Any,
) -> None:
    settings.RUNALL_LOADGEN_WORKERS = 2
    specs = {spec.name: spec.argv for spec in product_processes("127.0.0.1", 8000)}
    assert [name for name in specs if name.startswith("loadgen")] == ["loadgen", "loadgen-2"]
    for name in ("loadgen", "loadgen-2"):
        argv = " ".join(specs[name])
        assert f"-n {name}@%h -Q loadgen -c 1 --prefetch-multiplier 1" in argv
    assert " -Q default " in " ".join(specs["worker"])


def test_its_web_servers_give_up_on_open_connections_before_runall_gives_up_on_them() -> None:
    """Told to stop (by runall, or by the kernel when runall was killed), gunicorn waits for
    open connections, an idle keep-alive one too, 30 s by default: longer than runall waits."""
    specs = {spec.name: spec.argv for spec in product_processes("127.0.0.1", 8000)}
    for name in ("web", "target"):
        argv = specs[name]
        assert int(argv[argv.index("--graceful-timeout") + 1]) < STOP_GRACE_S, name


def described(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline()[:4])}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def test_it_backs_off_exponentially_up_to_thirty_seconds_and_forgives_a_long_uptime() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay(uptime_s=0.5) for _ in range(7)]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    # A process that stayed up a good while starts the sequence afresh.
    assert backoff.next_delay(uptime_s=backoff.stable_after_s + 1) == 1
    assert backoff.next_delay(uptime_s=1) == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_restarts_the_web_server_alone_when_it_exits_and_stops_all_on_sigterm(
    product: Product,
) -> None:
    others = {name: product.child(name).pid for name in ("loadgen", "worker", "beat", "target")}
    web = product.child("web")
    web.send_signal(signal.SIGTERM)
    gone_after = wait_for(lambda: not answers(product.web_health), 30, "the web server's exit")
    back_after = wait_for(
        lambda: answers(product.web_health) and restarted(product, "web", web.pid),
        60,
        "the web server's restart",
    )
    print(f"web down after {gone_after:.1f} s, answering again {back_after:.1f} s later")
    assert {name: product.child(name).pid for name in others} == others
    assert product.proc.poll() is None
    assert "web exited with status 0; restarting it in 1 s" in product.output()

    descendants = product.descendants()
    product.proc.send_signal(signal.SIGTERM)
    assert product.proc.wait(timeout=40) == 0
    assert all(gone(proc) for proc in descendants)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_process_outlives_a_runall_killed_with_sigkill(product: Product) -> None:
    descendants = product.descendants()
    names = {proc.name() for proc in descendants}
    assert len(descendants) >= 8, names  # four leaders, gunicorn workers, the prefork pool
    # A client holding a connection open: told to stop, gunicorn waits for it (30 s by
    # default) before it kills its workers.
    held = [socket.create_connection(("127.0.0.1", port)) for port in product.ports()]
    for sock in held:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the headers never end
    product.proc.kill()
    product.proc.wait()
    try:
        waited = wait_for(lambda: all(gone(p) for p in descendants), 30, "every descendant's end")
    except AssertionError as late:
        alive = [described(p) for p in descendants if not gone(p)]
        raise AssertionError(f"{late}: still running {alive}") from None
    finally:
        for sock in held:
            sock.close()
    print(f"every descendant gone {waited:.1f} s after runall's SIGKILL")


@pytest.fixture
def slow_definition(transactional_db: Any) -> Iterator[LoadTestDefinition]:
    with target_server() as base_url:
        definition = LoadTestDefinition.objects.create(
            name="long", target_base_url=base_url, load_model="closed", users=2, duration_s=120
        )
        LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
        yield definition


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_is_restarted_and_interrupts_the_run_it_left(
    product: Product, slow_definition: LoadTestDefinition
) -> None:
    from loadtests import services

    run = services.create_run(slow_definition)
    send_task(product.broker_url, "loadtests.tasks.execute_run", run.pk)
    wait_for(lambda: run.intervals.count() >= 3, 60, "three recorded seconds")
    worker = product.child("loadgen")
    family = [worker, *worker.children(recursive=True)]
    assert len(family) >= 2  # the main process and its prefork pool
    node = LoadTestRun.objects.get(pk=run.pk).worker_node
    assert node == f"loadgen@{socket.gethostname()}"

    worker.kill()
    interrupted_after = wait_for(
        lambda: LoadTestRun.objects.get(pk=run.pk).status != "running", 45, "the reap"
    )
    restarted_after = wait_for(
        lambda: restarted(product, "loadgen", worker.pid),
        60,
        "the worker's restart",
    )
    print(
        f"run interrupted {interrupted_after:.1f} s after the worker's SIGKILL; "
        f"worker back {restarted_after:.1f} s after that"
    )
    assert all(gone(proc) for proc in family), "the dead worker's pool lives on"
    run.refresh_from_db()
    assert run.status == "interrupted", run.status_reason
    assert run.intervals.count() >= 3
    assert run.requests == sum(run.intervals.values_list("requests", flat=True)) > 0
    assert "loadgen was killed by SIGKILL; restarting it in 1 s" in product.output()
    assert product.proc.poll() is None
