"""A real Prometheus (Debian's package) scrapes the product's /metrics, served by gunicorn with
two worker processes, while a load test runs; its HTTP API then returns the run's exact request
count. Ports are free ones picked per test, storage is a temporary directory: several suites
can run this at once."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests import lifecycle, services
from loadtests.models import LoadTestDefinition, LoadTestStep
from tests.conftest import closed_port, worker_env
from tests.processes import wait_for
from tests.targets import target_server

ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Generous: two cores shared with other suites; the assertions are on values, not on time.
START_TIMEOUT_S = 90
SCRAPED_TIMEOUT_S = 90

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: `make test` installs Debian's package prometheus")
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serving(proc: subprocess.Popen[bytes], port: int, path: str, what: str, log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"{what} exited: {log.read_text(errors='replace')[-3000:]}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False


@pytest.fixture
def web(django_db_setup: Any, django_db_blocker: Any, tmp_path: Path) -> Iterator[int]:
    """The product's web role under gunicorn (two processes) on a free port."""
    from django.db import connection

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    port = closed_port()
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [gunicorn, "offgridperf.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--threads", "2"],
            cwd=ROOT, env=worker_env(database_name), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: serving(proc, port, "/metrics", "gunicorn", log), START_TIMEOUT_S, "web")
        yield port
    finally:
        stop(proc)


@pytest.fixture
def prometheus(web: int, tmp_path: Path) -> Iterator[int]:
    """Prometheus scraping the web role every second, with the product's alert rules loaded."""
    port = closed_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "rule_files": [str(ALERT_RULES)],
                "scrape_configs": [
                    {
                        "job_name": "offgridperf",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"127.0.0.1:{web}"]}],
                    }
                ],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(
            lambda: serving(proc, port, "/-/ready", "prometheus", log), START_TIMEOUT_S, "ready"
        )
        yield port
    finally:
        stop(proc)


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def value(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_reads_a_runs_exact_request_count(prometheus: int) -> None:
    wait_for(lambda: value(prometheus, 'up{job="offgridperf"}') == 1, SCRAPED_TIMEOUT_S, "scrape")
    with target_server() as target_url:
        definition = LoadTestDefinition.objects.create(
            name="scraped", target_base_url=target_url, users=2, duration_s=3, timeout_s=2
        )
        LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
        run = lifecycle.execute(services.create_run(definition).pk)
    assert run is not None and run.requests > 0
    promql = 'offgridperf_loadtest_requests_total{definition="scraped"}'
    wait_for(
        lambda: value(prometheus, promql) == run.requests,
        SCRAPED_TIMEOUT_S,
        f"Prometheus reading the run's {run.requests} requests",
    )
    # The series of a run's figures are there too, and the alert rules loaded. The scrape that
    # read the last request may have come before the run's end was stored: wait for the next.
    wait_for(
        lambda: value(prometheus, 'offgridperf_loadtest_runs_total{definition="scraped"}') == 1,
        SCRAPED_TIMEOUT_S,
        "Prometheus reading the ended run",
    )
    rules = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prometheus}/api/v1/rules"))
    names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert "OffgridperfNoLoadgenWorker" in names
