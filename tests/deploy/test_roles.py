"""Every role of the container image, run on the host through the image's entrypoint with the
environment compose and the Kubernetes manifests give it: each really starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, closed_port, worker_env
from tests.deploy.environments import (
    ENTRYPOINT,
    compose_checks,
    container_env,
    kubernetes_checks,
)
from tests.processes import wait_for

pytestmark = pytest.mark.slow

LONG_RUNNING = ("web", "worker", "loadgen", "beat", "target")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Roles:
    """Roles started through deploy/entrypoint.sh, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path, source: str) -> None:
        self.env, self.logs, self.source = env, logs, source
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{role}.log").open("wb")
        proc = subprocess.Popen(
            [str(ENTRYPOINT), role],
            cwd=ROOT,
            env={**self.env, "CELERY_NODE_NAME": self.node_name(role)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[role] = proc
        return proc

    @staticmethod
    def node_name(role: str) -> str:
        """worker and loadgen: a Celery node of this test process's own."""
        return f"{role}-{os.getpid()}"

    def node(self, role: str) -> str:
        return f"{self.node_name(role)}@{socket.gethostname()}"

    def output(self, role: str) -> str:
        return (self.logs / f"{role}.log").read_text(errors="replace")

    def health_checks(self, role: str) -> list[list[str]]:
        """The checks compose or the Kubernetes probes run in the role's container."""
        if self.source == "compose":
            return compose_checks(role, self.env)
        return kubernetes_checks(role, self.env)

    def check(self, argv: list[str], role: str) -> subprocess.CompletedProcess[str]:
        env = {
            **self.env,
            "CELERY_NODE_NAME": self.node_name(role),
            "HOSTNAME": socket.gethostname(),
        }
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()


@pytest.fixture
def roles(request: Any, tmp_path: Path, transactional_db: Any) -> Iterator[Roles]:
    """Roles with compose's environment, or the ConfigMap's when parametrized "kubernetes"."""
    from django.db import connection

    source = getattr(request, "param", "compose")
    bindir = ROOT / ".venv" / "bin"
    env = {
        **worker_env(connection.settings_dict["NAME"]),
        **container_env(source, "web"),
        "PYTHON": str(bindir / "python"),
        # The image's PATH leads to its venv: python and celery in the health checks.
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "OFFGRIDPERF_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECRET_KEY": "roles-test-secret-key-0123456789-abcdefghij",
        "PORT": str(free_port()),
        "TARGET_PORT": str(free_port()),
    }
    started = Roles(env, tmp_path, source)
    try:
        yield started
    finally:
        started.stop()


def healthz(port: int) -> dict[str, Any] | None:
    # Host: localhost, as the probes send it (compose and the ConfigMap allow it).
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return json.loads(response.read())
    except OSError:
        return None


def answers_ping(node: str) -> bool:
    from offgridperf.celery import app

    return bool(app.control.ping(destination=[node], timeout=1.0))


@pytest.mark.parametrize("roles", ["compose", "kubernetes"], indirect=True)
def test_it_starts_every_long_running_role_from_the_entrypoint(roles: Roles) -> None:
    for role in LONG_RUNNING:
        roles.start(role)
    web_port, target_port = int(roles.env["PORT"]), int(roles.env["TARGET_PORT"])
    waits = {
        "web": lambda: healthz(web_port),
        "target": lambda: healthz(target_port),
        # worker and loadgen are Celery nodes named by CELERY_NODE_NAME.
        "worker": lambda: answers_ping(roles.node("worker")),
        "loadgen": lambda: answers_ping(roles.node("loadgen")),
        "beat": lambda: "beat: Starting" in roles.output("beat"),
    }
    for role, ready in waits.items():
        try:
            wait_for(ready, 60, f"the {role} role answering")
        except AssertionError:
            raise AssertionError(f"{role} did not start:\n{roles.output(role)[-3000:]}") from None
    assert healthz(web_port)["status"] == "ok"
    # Exactly the command line runall uses for the role, exec'd (no wrapper left running).
    assert "--worker-class asgi" in roles.output("web")
    assert "-Q default -c 2" in roles.output("worker")
    assert "-Q loadgen -c 1 --prefetch-multiplier 1" in roles.output("loadgen")
    for role in LONG_RUNNING:
        assert roles.procs[role].poll() is None, f"{role} exited:\n{roles.output(role)[-3000:]}"
    # The health checks compose or the probes run pass against the running roles.
    checked = set()
    for role in LONG_RUNNING:
        for argv in roles.health_checks(role):
            result = roles.check(argv, role)
            assert result.returncode == 0, f"{role}: {argv}: {result.stdout}{result.stderr}"
            checked.add(role)
    assert checked == {"web", "worker", "loadgen", "target"}


def test_it_runs_the_loadgen_role_as_a_celery_node_on_queue_loadgen(roles: Roles) -> None:
    from offgridperf.celery import app

    roles.start("loadgen")
    node = roles.node("loadgen")
    wait_for(lambda: answers_ping(node), 60, "the loadgen node answering a ping")
    queues = app.control.inspect(destination=[node], timeout=2.0).active_queues() or {}
    assert [queue["name"] for queue in queues[node]] == ["loadgen"]


def test_it_runs_the_monitor_role_reading_a_registered_target(roles: Roles) -> None:
    from profiling.models import MonitorSample, ProfileTarget

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        target = ProfileTarget.objects.create(name="sleeper", pid=sleeper.pid)
        # compose's monitor service, as its command runs it; a short interval for the test.
        roles.env = {**roles.env, **container_env("compose", "monitor")}
        roles.env["PROFILING_MONITOR_INTERVAL_S"] = "0.5"
        roles.start("monitor")
        wait_for(
            lambda: MonitorSample.objects.filter(target=target).count() >= 2,
            60,
            f"two readings of the target by the monitor role:\n{roles.output('monitor')[-3000:]}",
        )
        sample = MonitorSample.objects.filter(target=target).latest("at")
        assert sample.pid == sleeper.pid and sample.rss_bytes > 0 and sample.threads >= 1
        assert roles.procs["monitor"].poll() is None, roles.output("monitor")[-3000:]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_it_migrates_and_exits(roles: Roles) -> None:
    proc = roles.start("migrate")
    assert proc.wait(timeout=120) == 0, roles.output("migrate")
    assert "database: migrated" in roles.output("migrate")


def test_it_says_what_is_missing_while_it_waits_for_the_database(roles: Roles) -> None:
    port = closed_port()
    roles.env = {
        **roles.env,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/nowhere",
        "DATABASE_WAIT_S": "2",
    }
    proc = roles.start("web")
    assert proc.wait(timeout=30) != 0
    output = roles.output("web")
    assert f"waiting for the database (PostgreSQL database 'nowhere' on 127.0.0.1:{port})" in output
    assert "did not answer within 2 s" in output


def test_it_names_the_roles_when_given_none() -> None:
    result = subprocess.run([str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 64
    assert "web, worker, loadgen, beat, target, monitor or migrate" in result.stderr


def test_it_gives_each_role_the_command_line_runall_uses() -> None:
    from offgridperf.management.commands.role import role_process
    from offgridperf.management.commands.runall import product_processes

    supervised = {spec.name: spec.argv for spec in product_processes("127.0.0.1", 8000)}
    for role in LONG_RUNNING:
        spec = role_process(role, host="127.0.0.1", port=8000, node="")
        assert spec.argv == supervised[role], role
    # A container listens on every address; its Celery node name may be set.
    everywhere = "0.0.0.0"  # noqa: S104 - what the image sets in BIND_HOST
    assert f"{everywhere}:8000" in role_process("web", host=everywhere, port=8000, node="").argv
    assert "gen-7@%h" in role_process("loadgen", host="", port=8000, node="gen-7").argv
