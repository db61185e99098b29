from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from loadtests.engine import run
from tests.engine.helpers import closed, step
from tests.targets import ROOT
from tests.tls import HttpsTarget

# Every step checks its body, so a run without errors read the right bytes through TLS.
CHECKED_STEPS = (
    step("/ok", check_contains="ok"),
    step("/json", check_json_field="data.id", check_json_value=1),
)


def test_it_runs_against_an_https_target_it_trusts(
    https_target: HttpsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(https_target.ca_file))
    result = run(closed(https_target.base_url, *CHECKED_STEPS, users=2))
    assert result.status == "completed", result.reason
    assert result.requests > 0
    assert result.errors == 0, result.errors_by_class
    assert all(entry["requests"] > 0 for entry in result.per_step.values())


def test_it_counts_every_request_to_an_untrusted_certificate_as_a_tls_error(
    https_target: HttpsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    result = run(closed(https_target.base_url, step("/ok"), abort_error_rate_pct=None))
    assert result.requests > 0
    assert result.errors == result.requests
    assert set(result.errors_by_class) == {"tls"}
    assert "certificate verify failed" in result.errors_by_class["tls"]["sample"]
    assert result.latency.total_count == 0


def test_it_accepts_an_untrusted_certificate_without_verification(
    https_target: HttpsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    result = run(closed(https_target.base_url, *CHECKED_STEPS, verify_tls=False))
    assert result.status == "completed", result.reason
    assert result.requests > 0
    assert result.errors == 0, result.errors_by_class


def test_it_keeps_tls_connections_alive(
    https_target: HttpsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(https_target.ca_file))
    result = run(closed(https_target.base_url, step("/ok"), users=3))
    assert result.errors == 0, result.errors_by_class
    # One handshake per user, then every request reuses its connection.
    assert result.requests > result.connections_opened == 3


def test_the_cli_skips_verification_with_insecure(https_target: HttpsTarget) -> None:
    env = {key: value for key, value in os.environ.items() if key != "SSL_CERT_FILE"}
    command = [
        sys.executable, "-m", "loadtests.engine", f"{https_target.base_url}/ok",
        "--users", "1", "--duration", "1", "--no-abort", "--json",
    ]  # fmt: skip
    for flags, error_classes in (([], {"tls"}), (["--insecure"], set())):
        done = subprocess.run(
            command + flags, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["requests"] > 0
        assert set(summary["errors_by_class"]) == error_classes
