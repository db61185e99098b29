"""The Django admin's add form for a load-test definition, as a browser posts it."""

from __future__ import annotations

from typing import Any

ADD = "/admin/loadtests/loadtestdefinition/add/"


def admin_form(target_url: str, **overrides: Any) -> dict[str, Any]:
    """A closed-model definition with one step (GET /ok) and no stages; `overrides` win."""
    data = {
        "name": "checkout",
        "description": "",
        "target_base_url": target_url,
        "load_model": "closed",
        "users": "5",
        "think_time_min_s": "0",
        "think_time_max_s": "0",
        "rate_rps": "0",
        "duration_s": "10",
        "shards": "1",
        "timeout_s": "5",
        "max_connections": "20",
        "abort_error_rate_pct": "5",
        "verify_tls": "on",  # a checkbox, ticked by default
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "1",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-order": "0",
        "steps-0-name": "home",
        "steps-0-method": "GET",
        "steps-0-path": "/ok",
        "steps-0-weight": "1",
        "steps-0-expected_statuses": "200",
        "steps-0-check_type": "",
        "steps-0-headers": "{}",
        "stages-TOTAL_FORMS": "0",
        "stages-INITIAL_FORMS": "0",
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data
