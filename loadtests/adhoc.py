"""Ad hoc runs: one URL, no stored definition (`loadtest url`). The config is a frozen config
like any run's, so the worker-side code, the run page and the summaries need nothing special."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loadtests import documents
from loadtests.models import LoadModel, LoadTestRun, RunTrigger


def adhoc_config(
    url: str,
    *,
    rate: float | None,
    users: int | None,
    duration_s: int,
    think: tuple[float, float] = (0.0, 0.0),
    timeout_s: float = 10.0,
    max_connections: int = 100,
    verify_tls: bool = True,
) -> dict[str, Any]:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return {
        "name": f"ad hoc: GET {url}",
        "definition_id": None,
        "target_base_url": base,
        "load_model": LoadModel.OPEN if rate else LoadModel.CLOSED,
        "users": users or 0,
        "rate_rps": rate or 0.0,
        "think_time_min_s": think[0],
        "think_time_max_s": think[1],
        "duration_s": duration_s,
        "timeout_s": timeout_s,
        "max_connections": max_connections,
        "follow_redirects": False,
        "verify_tls": verify_tls,
        "abort_error_rate_pct": None,
        "steps": [
            {
                "name": "get",
                "method": "GET",
                "path": path,
                "headers": {},
                "body": None,
                "weight": 1,
                "expected_statuses": [200],
                "check_type": "",
                "check_path": "",
                "check_value": "",
            }
        ],
        "stages": [],
        "thresholds": {
            "p95_ms": None,
            "p99_ms": None,
            "error_rate_pct": None,
            "min_throughput_rps": None,
        },
        "tags": [],
    }


def create_adhoc_run(frozen: dict[str, Any], *, trigger: str = RunTrigger.CLI) -> LoadTestRun:
    """A queued run of an ad hoc config; raises RunRefused when it may not start."""
    problems = documents.config_problems(frozen)
    if problems:
        raise documents.RunRefused(problems)
    return LoadTestRun.objects.create(
        name=frozen["name"],
        config=frozen,
        trigger=trigger,
        planned_duration_s=int(frozen["duration_s"]),
    )
