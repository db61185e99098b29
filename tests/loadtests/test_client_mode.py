"""`loadtest run NAME --server URL --token T --wait` from a machine with no database: a run
started and followed through the HTTP API, executed by a real Celery worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.models import ApiToken, LoadTestDefinition, LoadTestRun, RunStatus
from tests.conftest import ROOT, closed_port
from tests.loadtests.test_api import grant, token_for
from tests.loadtests.test_run_reports import valid_junit
from tests.loadtests.test_runs import run_cli


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a CI runner: the database and the broker are out of reach."""
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://nobody@127.0.0.1:{closed_port()}/unreachable"
    env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{closed_port()}/0"
    env["DJANGO_SETTINGS_MODULE"] = "offgridperf.settings"
    env.pop("OFFGRIDPERF_SERVER", None)
    env.pop("OFFGRIDPERF_TOKEN", None)
    return {**env, **extra}


def loadtest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "loadtest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def runner_token(django_user_model: Any) -> str:
    user = django_user_model.objects.create_user("ci", "ci@example.com", "pw-ci-12345")
    grant(user, "view_loadtestrun", "add_loadtestrun", "change_loadtestrun")
    return token_for(user)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_starts_and_follows_a_run_through_the_api_to_its_verdict(
    celery_worker_process: Any, live_server: Any, definition: LoadTestDefinition, runner_token: str
) -> None:
    done = loadtest(
        "run", "smoke", "--wait", "--json",
        env=client_env(OFFGRIDPERF_SERVER=live_server.url, OFFGRIDPERF_TOKEN=runner_token),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    run = LoadTestRun.objects.get(pk=summary["id"])
    assert run.status == summary["status"] == RunStatus.PASSED
    assert run.trigger == "api" and run.started_by is not None
    assert summary["requests"] == run.requests > 0
    assert summary["url"] == f"{live_server.url}/runs/{run.pk}/"
    assert f"run #{run.pk}: a worker took it after " in done.stderr
    assert any(line.startswith("[") and "req/s" in line for line in done.stderr.splitlines())
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failed_verdict_exits_1_through_the_api_writing_the_reports_the_server_made(
    celery_worker_process: Any,
    live_server: Any,
    definition: LoadTestDefinition,
    runner_token: str,
    tmp_path: Path,
) -> None:
    LoadTestDefinition.objects.filter(pk=definition.pk).update(threshold_p95_ms=0.001)
    junit, summary = tmp_path / "results.xml", tmp_path / "summary.md"
    done = loadtest(
        "run", "smoke", "--wait", "--server", live_server.url, "--token", runner_token,
        "--junit", str(junit), "--summary-md", str(summary), env=client_env(),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Threshold not met: p95 latency (ms) is" in done.stdout
    failure = valid_junit(junit.read_text()).find(".//testcase/failure")
    assert failure is not None and "(rule p95_ms)" in failure.get("message")
    assert summary.read_text().startswith("### ❌ Load test smoke: failed")


@pytest.mark.django_db(transaction=True)
def test_a_refused_token_or_definition_exits_2_saying_why(
    live_server: Any, definition: LoadTestDefinition, runner_token: str
) -> None:
    done = loadtest("run", "smoke", "--server", live_server.url, "--token", "ogp_wrong",
                    env=client_env())  # fmt: skip
    assert done.returncode == 2
    assert "401" in done.stderr and "not valid" in done.stderr
    done = loadtest("run", "nope", "--server", live_server.url, "--token", runner_token,
                    env=client_env())  # fmt: skip
    assert done.returncode == 2
    assert "definition: There is no definition named or numbered 'nope'" in done.stderr
    assert not LoadTestRun.objects.exists()


@pytest.mark.django_db
def test_server_flags_are_checked() -> None:
    code, _, err = run_cli("run", "smoke", "--server", "http://127.0.0.1:1")
    assert code == 2 and "--token" in err
    code, _, err = run_cli("run", "smoke", "--server", "file:///etc/passwd", "--token", "t")
    assert code == 2 and "http:// or https://" in err
    code, _, err = run_cli("run", "smoke", "--server", "http://x", "--token", "t", "--local")
    assert code == 2 and "--local" in err
    code, _, err = run_cli("run", "smoke", "--server", f"http://127.0.0.1:{closed_port()}",
                           "--token", "t")  # fmt: skip
    assert code == 2 and "not started" in err


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_cancels_the_followed_run_on_the_server_and_exits_130(
    celery_worker_process: Any, live_server: Any, definition: LoadTestDefinition, runner_token: str
) -> None:
    from tests.loadtests.test_cli_url import read_until

    LoadTestDefinition.objects.filter(pk=definition.pk).update(duration_s=120)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "loadtest", "run", "smoke", "--wait", "--json",
         "--server", live_server.url, "--token", runner_token],
        cwd=ROOT, env=client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        said = read_until(proc, b"[", timeout_s=60)  # the first progress line: it runs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, said + err
    assert b"Traceback" not in err
    summary = json.loads(out)
    run = LoadTestRun.objects.get(pk=summary["id"])
    assert run.status == summary["status"] == RunStatus.CANCELLED
    assert run.requests > 0
