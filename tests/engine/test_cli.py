from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.engine.__main__ import main, parse_args
from loadtests.engine.flags import MIN_DEFAULT_CONNECTIONS, MISSING_RULE, load_fields
from tests.targets import ROOT


def test_the_cli_prints_a_json_summary(target: str) -> None:
    command = [
        sys.executable,
        "-m",
        "loadtests.engine",
        f"{target}/ok",
        "--rate",
        "50",
        "--duration",
        "1",
        "--json",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed"
    assert summary["requests"] == 50
    assert summary["latency_ms"]["p99"] > 0
    # Reported, not judged here: ru_maxrss of a child started by a grown test process can carry
    # the parent's high-water mark; `make bench` (loadgen, memory) measures the engine's own.
    assert summary["peak_rss_mb"] > 0


def test_the_cli_rejects_bad_options() -> None:
    command = [
        sys.executable,
        "-m",
        "loadtests.engine",
        "http://127.0.0.1:1/",
        "--users",
        "0",
        "--duration",
        "1",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--users 0: The closed model needs 1 to" in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "10"], MISSING_RULE),
        (["--duration", "1"], MISSING_RULE),
        (["--rate", "10", "--duration", "0.5"], "argument --duration: invalid int value"),
        (["--rate", "0", "--duration", "1"], "--rate 0.0: The open model needs a rate above 0"),
        (["--users", "1", "--duration", "0"], "--duration 0: The duration must be above 0"),
        (["--users", "1", "--duration", "1", "--connections", "0"], "--connections 0: Allow 1"),
        (["--users", "1", "--duration", "1", "--timeout", "0"], "--timeout 0.0: The timeout"),
        (["--users", "1", "--duration", "1", "--think", "2,1"], "--think '2,1': give MIN or"),
        (["--rate", "5", "--duration", "1", "--think", "1"], "--think '1': think time applies"),
    ],
)
def test_the_cli_names_the_bad_load_flag_and_its_rule(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["http://127.0.0.1:1/", *flags])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cli_gives_every_user_a_connection_by_default() -> None:
    closed = load_fields(vars(parse_args(["http://x/", "--users", "300", "--duration", "1"])))
    assert closed["max_connections"] == 300
    opened = load_fields(vars(parse_args(["http://x/", "--rate", "300", "--duration", "1"])))
    assert opened["max_connections"] == MIN_DEFAULT_CONNECTIONS


def test_the_cli_runs_and_tries_a_flow_document(target: str, tmp_path: Path) -> None:
    document = {
        "target_base_url": target, "load_model": "closed", "users": 1, "duration_s": 1,
        "mode": "flow",
        "steps": [
            {"name": "read", "method": "GET", "path": "/json",
             "extract": [{"variable": "id", "from": "json", "expression": "$.data.id"}]},
            {"name": "use", "method": "GET", "path": "/ok?id={{ id }}"},
        ],
    }  # fmt: skip
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(document))
    base = [sys.executable, "-m", "loadtests.engine", "--document", str(path)]
    done = subprocess.run([*base, "--try-once"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)
    assert [(e["step"], e["status"], e["extracted"]) for e in trace] == [
        ("read", 200, {"id": "1"}), ("use", 200, {}),
    ]  # fmt: skip
    done = subprocess.run([*base, "--json"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["iterations"] > 0 and summary["errors"] == 0
    document["steps"][1]["path"] = "/ok?id={{ idd }}"
    path.write_text(json.dumps(document))
    done = subprocess.run(base, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "steps[1].path: unknown variable 'idd' at character 11" in done.stderr
