from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'urlconf': settings.ROOT_URLCONF, 'role': settings.OFFGRIDPERF_ROLE,"
    " 'login_required': 'django.contrib.auth.middleware.LoginRequiredMiddleware'"
    " in settings.MIDDLEWARE, 'ttls': [settings.CACHE_TTL_BATCH, settings.CACHE_TTL_ACTIVITY,"
    " settings.CACHE_TTL_EMISSIONS, settings.CACHE_TTL_QUERY], 'port': settings.TARGET_PORT,"
    " 'token': bool(settings.EMISSIONS_API_TOKEN)}))"
)
OWN_KEYS = (
    "OFFGRIDPERF_ROLE",
    "TARGET_PORT",
    "CACHE_TTL_BATCH",
    "CACHE_TTL_ACTIVITY",
    "CACHE_TTL_EMISSIONS",
    "CACHE_TTL_QUERY",
    "EMISSIONS_API_TOKEN",
    "OFFGRIDPERF_LOCAL",
    "DEBUG",
)


def probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in OWN_KEYS}
    clean.update({"OFFGRIDPERF_VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 40})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "offgridperf.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_defaults_to_the_web_role_and_the_issue_ttls(tmp_path: Path) -> None:
    result = probe(tmp_path)
    data = json.loads(result.stdout)
    assert data["urlconf"] == "offgridperf.urls"
    assert data["login_required"] is True
    assert data["ttls"] == [3600, 1800, 3600, 300]
    assert data["port"] == 8001
    assert data["token"] is False  # not a local run and no EMISSIONS_API_TOKEN: writes are off


def test_it_serves_the_api_without_login_in_the_target_role(tmp_path: Path) -> None:
    result = probe(tmp_path, OFFGRIDPERF_ROLE="target", CACHE_TTL_QUERY="60")
    data = json.loads(result.stdout)
    assert data["urlconf"] == "emissions.api_urls"
    assert data["login_required"] is False
    assert data["ttls"][3] == 60


def test_it_generates_the_api_token_once_for_local_runs(tmp_path: Path) -> None:
    assert json.loads(probe(tmp_path, OFFGRIDPERF_LOCAL="1").stdout)["token"] is True
    first = (tmp_path / "emissions_api_token").read_text()
    probe(tmp_path, OFFGRIDPERF_LOCAL="1")
    assert (tmp_path / "emissions_api_token").read_text() == first


def test_it_names_the_variable_of_a_bad_value(tmp_path: Path) -> None:
    for name, value, words in (
        ("CACHE_TTL_BATCH", "an hour", "is not a whole number"),
        ("CACHE_TTL_QUERY", "0", "out of range"),
        ("OFFGRIDPERF_ROLE", "worker", "use one of web, target"),
        ("TARGET_PORT", "70000", "out of range"),
    ):
        result = probe(tmp_path, **{name: value})
        assert result.returncode != 0
        assert name in result.stderr and words in result.stderr


def test_it_never_shows_the_api_token_back(tmp_path: Path) -> None:
    result = probe(tmp_path, EMISSIONS_API_TOKEN="short-secret")
    assert result.returncode != 0
    assert "EMISSIONS_API_TOKEN is too short" in result.stderr
    assert "short-secret" not in result.stderr
