"""The reference load tests against the emissions target, as plain data.

`reference_definitions()` describes `emissions-smoke` and `emissions-steady` with the field
names of loadtests' LoadTestDefinition / LoadTestStep, so the loadtests side can turn them into
rows. Paths only use what `seed_emissions` always creates (batch `seed-2024-12`, December 2024,
sites site-001..site-060), so they answer 200 on any seeded target.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

SEED_BATCH = "seed-2024-12"


def _step(name: str, path: str, weight: int, **check: str) -> dict[str, Any]:
    return {
        "name": name,
        "method": "GET",
        "path": path,
        "weight": weight,
        "expected_statuses": "200",
        "headers": {"Accept": "application/json"},
        "body": "",
        "check_type": check.get("check_type", ""),
        "check_path": check.get("check_path", ""),
        "check_value": check.get("check_value", ""),
    }


def read_steps() -> list[dict[str, Any]]:
    """Weighted read endpoints: mostly cached reads, plus the two tuning opportunities."""
    steps = [
        _step(
            "batch status",
            f"/api/batches/{SEED_BATCH}/",
            20,
            check_type="json_equals",
            check_path="status",
            check_value='"done"',
        ),
        _step("batch activities", f"/api/batches/{SEED_BATCH}/activities/?page=1&page_size=50", 15),
        _step("totals by scope", "/api/emissions/totals/?group_by=scope", 15),
        _step("totals by month", "/api/emissions/totals/?group_by=month", 10),
        _step(
            "batch totals by site", f"/api/emissions/totals/?group_by=site&batch={SEED_BATCH}", 5
        ),
        _step("scope 2 activities", "/api/activities/?scope=2&page=1&page_size=50", 15),
        _step(
            "December activities", "/api/activities/?date_from=2024-12-01&date_to=2024-12-31", 10
        ),
        # Uncached on purpose (unindexed filter and sort; an N+1): rare, so a healthy setup
        # passes, but slow enough to stand out in the per-step figures and query captures.
        _step("activities of a site", "/api/activities/by-site/?site=site-012&page_size=20", 1),
        _step("batch list", "/api/batches/", 1),
    ]
    for order, step in enumerate(steps):
        step["order"] = order
    return steps


def reference_definitions(target_port: int | None = None) -> list[dict[str, Any]]:
    """`emissions-smoke` (closed model) and `emissions-steady` (open model), as dicts."""
    base_url = f"http://127.0.0.1:{target_port or settings.TARGET_PORT}"
    common = {
        "target_base_url": base_url,
        "timeout_s": 5.0,
        "follow_redirects": False,
        "steps": read_steps(),
    }
    smoke = {
        **common,
        "name": "emissions-smoke",
        "description": (
            "Smoke test of the emissions reference workload: 10 virtual users with 0.5-1.5 s "
            "think time for 30 s over its read endpoints."
        ),
        "load_model": "closed",
        "users": 10,
        "think_time_min_s": 0.5,
        "think_time_max_s": 1.5,
        "rate_rps": None,
        "duration_s": 30,
        "threshold_p95_ms": 500.0,
        "threshold_p99_ms": None,
        "threshold_error_rate_pct": 1.0,
        "threshold_min_throughput_rps": None,
    }
    steady = {
        **common,
        "name": "emissions-steady",
        "description": (
            "Steady open-model test: 200 requests/s for 60 s over the weighted read endpoints, "
            "latency measured from the intended start (coordinated omission corrected)."
        ),
        "load_model": "open",
        "users": None,
        "think_time_min_s": 0.0,
        "think_time_max_s": 0.0,
        "rate_rps": 200.0,
        "duration_s": 60,
        "max_connections": 64,
        "threshold_p95_ms": 250.0,
        "threshold_p99_ms": None,
        "threshold_error_rate_pct": 1.0,
        "threshold_min_throughput_rps": 180.0,
    }
    return [smoke, steady]
