from __future__ import annotations

import json
import subprocess
import sys

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
    assert 0 < summary["peak_rss_mb"] < 200


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
