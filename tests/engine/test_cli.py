from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert "users:" in done.stderr


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
