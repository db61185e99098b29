from __future__ import annotations

import json
from io import StringIO
from typing import Any

from django.conf import settings
from django.core.management import call_command

from emissions.models import Activity, ActivityBatch, BatchStatus, EmissionFactor

# The reference load tests are load-test documents (see loadtests/schema), read here as JSON.
REFERENCE_DIR = settings.BASE_DIR / "emissions" / "loadtests"


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_emissions", *args, stdout=out)
    return out.getvalue()


def test_it_seeds_calculated_batches_and_skips_when_asked(db: Any) -> None:
    assert "seeded 30,000 activities in 2 batches" in seed("--activities", "30000")
    batches = ActivityBatch.objects.order_by("reference")
    assert [b.reference for b in batches] == ["seed-2024-11", "seed-2024-12"]
    assert all(b.status == BatchStatus.DONE and b.row_count == 15000 for b in batches)
    assert Activity.objects.filter(kg_co2e__isnull=False).count() > 29_900
    assert EmissionFactor.objects.count() == 34
    assert "not seeding" in seed("--if-empty", "--activities", "10")
    assert Activity.objects.count() == 30_000
    seed("--activities", "100")  # replaces the seeded batches
    assert Activity.objects.count() == 100


def test_it_is_reproducible(db: Any) -> None:
    seed("--activities", "500", "--seed", "7")
    first = list(Activity.objects.order_by("line_number").values_list("quantity", "site")[:50])
    seed("--activities", "500", "--seed", "7")
    assert (
        list(Activity.objects.order_by("line_number").values_list("quantity", "site")[:50]) == first
    )


def test_the_reference_load_tests_hit_endpoints_that_answer(api: Any) -> None:
    seed("--activities", "2000")
    smoke, steady = (
        json.loads((REFERENCE_DIR / f"emissions-{name}.json").read_text())
        for name in ("smoke", "steady")
    )
    assert (smoke["name"], smoke["load_model"], smoke["users"], smoke["duration_s"]) == (
        "emissions-smoke",
        "closed",
        10,
        30,
    )
    assert (steady["name"], steady["load_model"], steady["rate_rps"], steady["duration_s"]) == (
        "emissions-steady",
        "open",
        200.0,
        60,
    )
    assert steady["target_base_url"] == "http://127.0.0.1:${TARGET_PORT:-8001}"
    for step in steady["steps"]:
        response = api.get(step["path"])
        assert response.status_code in step["expected_statuses"], step["path"]
        if step["check_type"] == "json_equals":
            assert response.json()[step["check_path"]] == json.loads(step["check_value"])
