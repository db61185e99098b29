"""The emissions demo target (runall's `target` role under `make run`) is instrumented like
any third-party app, with the key the workbench signs its tags with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.offgridperf.test_settings import ROOT

PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'middleware': settings.MIDDLEWARE[0],"
    " 'installed': 'offgridperf_agent' in settings.INSTALLED_APPS,"
    " 'key': settings.OFFGRIDPERF_AGENT_KEY, 'redis': settings.OFFGRIDPERF_AGENT_REDIS_URL}))"
)


def probe(tmp_path: Path, role: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "OFFGRIDPERF_VAR_DIR": str(tmp_path),
             "OFFGRIDPERF_LOCAL": "1", "OFFGRIDPERF_ROLE": role, "REDIS_URL": "",
             "OFFGRIDPERF_AGENT_KEY": "", "OFFGRIDPERF_AGENT_REDIS_URL": "",
             "DJANGO_SETTINGS_MODULE": "offgridperf.settings"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_target_runs_the_agent_first_with_the_workbenchs_key(tmp_path: Path) -> None:
    web, target = probe(tmp_path, "web"), probe(tmp_path, "target")
    assert target["middleware"] == "offgridperf_agent.middleware.AgentMiddleware"
    assert target["installed"] and not web["installed"]
    assert len(target["key"]) >= 32 and target["key"] == web["key"]
    assert target["redis"] == web["redis"] == f"unix://{tmp_path}/redis.sock?db=0"
    assert oct((tmp_path / "agent_key").stat().st_mode & 0o777) == "0o600"
