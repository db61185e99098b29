"""`loadtest url` as CI uses it: curl's and k6's flags, exit status 0/1/2, the --json document,
progress on stderr, and Ctrl-C (SIGINT, and SIGTERM) against a real process."""

from __future__ import annotations

import argparse
import hashlib
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from loadtests import adhoc
from loadtests.engine import __main__ as engine_cli
from loadtests.management.commands.loadtest import Command
from loadtests.models import LoadTestRun, RunStatus
from tests.conftest import ROOT, worker_env
from tests.loadtests.test_runs import run_cli

pytestmark = pytest.mark.django_db


def url_cli(url: str, *flags: str, duration: str = "1") -> tuple[int, str, str]:
    return run_cli("url", url, "--rate", "40", "--duration", duration, *flags)


def test_it_exits_0_and_reports_every_threshold_when_all_are_met(target_url: str) -> None:
    code, out, err = url_cli(
        f"{target_url}/ok", "--threshold", "p95<5000", "--threshold", "errors<1%",
        "--threshold", "p(99)<10s", "--threshold", "rps>1", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "passed"
    explicit = {t["name"]: t for t in summary["thresholds"] if not t["implicit"]}
    assert set(explicit) == {"p95_ms", "p99_ms", "error_rate_pct", "min_throughput_rps"}
    assert explicit["p95_ms"]["limit"] == 5000 and explicit["p99_ms"]["limit"] == 10_000
    assert explicit["error_rate_pct"]["limit"] == 1 and explicit["min_throughput_rps"]["limit"] == 1
    assert all(t["passed"] and t["actual"] is not None for t in explicit.values())


def test_the_json_has_the_steps_the_health_and_the_absolute_page_url(target_url: str) -> None:
    code, out, err = url_cli(f"{target_url}/ok", "--json")
    assert code == 0, err
    summary = json.loads(out)
    run = LoadTestRun.objects.get(pk=summary["id"])
    assert summary["url"] == settings.OFFGRIDPERF_BASE_URL.rstrip("/") + f"/runs/{run.pk}/"
    assert summary["url"].startswith("http")
    assert summary["steps"]["get"]["requests"] == summary["requests"] > 0
    assert "valid" in summary["health"]
    assert summary["progress"] is None  # it has ended


def test_it_prints_a_progress_line_a_second_on_stderr(target_url: str) -> None:
    code, out, err = url_cli(f"{target_url}/ok", "--json", duration="2")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert 2 <= len(lines) <= 3, err
    assert "s/2s]" in lines[-1]
    for part in ("req/s", "p95", "errors 0 (0.00%)", "requests"):
        assert part in lines[-1]
    json.loads(out)  # stdout holds the JSON alone


def test_it_exits_1_naming_the_limit_and_the_actual_value(target_url: str) -> None:
    code, out, err = url_cli(f"{target_url}/ok", "--threshold", "p95<0.001", "--json")
    assert code == 1, err
    summary = json.loads(out)
    assert summary["status"] == "failed"
    failed = [t for t in summary["thresholds"] if not t["passed"]]
    assert [t["name"] for t in failed] == ["p95_ms"]
    assert failed[0]["actual"] > failed[0]["limit"] == 0.001
    assert f"is {failed[0]['actual']:g}, above 0.001 (rule p95_ms)" in summary["status_reason"]


def test_it_exits_1_when_the_error_rate_threshold_is_not_met(target_url: str) -> None:
    code, out, _ = url_cli(f"{target_url}/status/500", "--threshold", "errors<1%")
    assert code == 1
    assert "error rate (%) is 100, above 1 (rule error_rate_pct)" in out


def test_expect_decides_what_counts_as_success(target_url: str) -> None:
    code, out, err = url_cli(f"{target_url}/status/500", "--expect", "200-299,500", "--json")
    assert code == 0, err
    assert json.loads(out)["errors"] == 0
    run = LoadTestRun.objects.get()
    assert run.config["steps"][0]["expected_statuses"] == [*range(200, 300), 500]


def test_the_default_expect_counts_redirects_as_success(target_url: str) -> None:
    code, out, err = url_cli(f"{target_url}/redirect", "--json")
    assert code == 0, err
    assert json.loads(out)["errors"] == 0


def test_method_headers_and_body_reach_the_target(target_url: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"s3cret-key").hexdigest()
    url = f"{target_url}/expect-header?name=X-Api-Key&sha256={digest}"
    code, _, err = url_cli(url, "-H", "X-Api-Key: s3cret-key", "-H", "Accept: text/plain")
    assert code == 0, err
    code, _, _ = url_cli(url, "-H", "X-Api-Key: wrong")
    assert code == 1  # the target answered 403

    body = tmp_path / "body.json"
    body.write_text('{"n": 1}')
    code, _, err = url_cli(
        f"{target_url}/echo", "-X", "put", "--data-file", str(body),
        "-H", "Content-Type: application/json",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = url_cli(f"{target_url}/echo", "-d", "a=1")
    assert code == 0, err
    put, post = (run.config["steps"][0] for run in LoadTestRun.objects.order_by("-id")[:2][::-1])
    assert (put["method"], put["body"]) == ("PUT", '{"n": 1}')
    assert put["headers"] == {"Content-Type": "application/json"}
    # As curl: -d alone is a form POST.
    assert (post["method"], post["body"]) == ("POST", "a=1")
    assert post["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}


BAD_FLAGS = [
    (["-X", "FETCH"], "-X 'FETCH': the method must be one of GET, HEAD"),
    (["-H", "X-Token abc"], "-H ['X-Token abc']: give a header as 'Name: value'"),
    (["-H", "Bad Name: x"], "is not a valid header name"),
    (["-H", "Content-Length: 3"], "The engine sets Content-Length itself."),
    (["-H", "X-A: 1", "-H", "x-a: 2"], "x-a is given twice"),
    (["-H", "X-A: caf\u00e9\u20ac"], "must be Latin-1 text"),
    (["--expect", "99"], "--expect '99': '99' is not a status code or range of them (100-599)"),
    (["--expect", "300-200"], "a range goes from the lower code to the higher"),
    (["--expect", "2xx"], "--expect '2xx'"),
    (["--threshold", "p50<100"], "give p95<MS, p99<MS, errors<PCT% or rps>N"),
    (["--threshold", "errors<1"], "give the error rate as a percentage from 0 to 100"),
    (["--threshold", "rps<100"], "rps takes an lower limit (>)"),
    (["--threshold", "p95>100"], "p95 takes an upper limit (<)"),
    (["--threshold", "p95<1", "--threshold", "p(95)<2"], "sets a limit already given"),
    (["--data-file", "/nonexistent/body"], "--data-file '/nonexistent/body': cannot read it"),
    # The load flags' rules and messages are the engine CLI's (loadtests/engine/flags.py).
    (["--think", "1"], "--think '1': think time applies to --users (closed model) only"),
    (["--connections", "0"], "--connections 0: Allow 1 to"),
    (["--duration", "0"], "--duration 0: The duration must be above 0"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_it_exits_2_naming_the_flag_and_the_rule(
    target_url: str, flags: list[str], message: str
) -> None:
    code, out, err = url_cli(f"{target_url}/ok", *flags)
    assert code == 2
    assert message in err
    assert not LoadTestRun.objects.exists()


def test_both_command_lines_declare_the_load_flags_alike() -> None:
    def load_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[Any, ...]]:
        return {
            action.dest: (action.option_strings, action.type, action.default, action.help)
            for action in parser._actions
            if action.dest in {"users", "rate", "duration", "connections", "timeout", "think",
                               "insecure"}
        }  # fmt: skip

    command = Command().create_parser("manage.py", "loadtest")
    (subcommands,) = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
    url_flags = load_flags(subcommands.choices["url"])
    assert url_flags == load_flags(engine_cli.build_parser())
    assert len(url_flags) == 7


def test_a_path_the_engine_refuses_exits_2(target_url: str) -> None:
    code, _, err = url_cli(f"{target_url}/a b")
    assert code == 2
    assert "URL" in err and "space" in err.lower()


def test_the_threshold_parser_speaks_k6() -> None:
    assert adhoc.parse_threshold("p95<200") == ("p95_ms", 200.0)
    assert adhoc.parse_threshold("p(99) <= 1.5s") == ("p99_ms", 1500.0)
    assert adhoc.parse_threshold("p95<200ms") == ("p95_ms", 200.0)
    assert adhoc.parse_threshold("errors<0.5%") == ("error_rate_pct", 0.5)
    assert adhoc.parse_threshold("rps>=100") == ("min_throughput_rps", 100.0)
    assert adhoc.parse_expect("200-202, 404") == (200, 201, 202, 404)


# -- signals against a real process ------------------------------------------------------


def read_until(proc: subprocess.Popen[bytes], prefix: bytes, timeout_s: float) -> bytes:
    """stderr up to and including the first line that starts with `prefix`."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no line starting with {prefix!r} within {timeout_s} s: {seen!r}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_run_prints_the_partial_summary_and_exits_128_plus_it(
    target_url: str, signum: int
) -> None:
    from django.db import connection

    command = [
        sys.executable, "manage.py", "loadtest", "url", f"{target_url}/ok",
        "--rate", "20", "--duration", "120", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env(connection.settings_dict["NAME"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        said = read_until(proc, b"[", timeout_s=60)  # the first progress line
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = said + err
    assert proc.returncode == 128 + signum, err
    assert b"Traceback" not in err
    summary: dict[str, Any] = json.loads(out)
    run = LoadTestRun.objects.get(pk=summary["id"])
    assert run.status == summary["status"] == RunStatus.CANCELLED
    assert 0 < run.requests == summary["requests"]
    assert run.finished_at is not None
    assert b"interrupted" in err


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_during_run_wait_cancels_the_workers_run_and_exits_130(
    celery_worker_process: Any, definition: Any
) -> None:
    from django.db import connection

    type(definition).objects.filter(pk=definition.pk).update(duration_s=120)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "loadtest", "run", "smoke", "--wait", "--json"],
        cwd=ROOT,
        env=worker_env(connection.settings_dict["NAME"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        said = read_until(proc, b"[", timeout_s=60)  # a worker runs it
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, said + err
    assert b"Traceback" not in err
    run = LoadTestRun.objects.get(pk=json.loads(out)["id"])
    assert run.status == RunStatus.CANCELLED and run.requests > 0
