from __future__ import annotations

import time
from typing import Any

import pytest

from emissions import services
from emissions.models import ActivityBatch, BatchStatus, EmissionFactor
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv


@pytest.fixture
def known_batch(api: Any, auth: dict[str, str], factors: Any) -> ActivityBatch:
    response = upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="known")
    assert response.status_code == 201
    services.calculate(response.json()["id"])
    return ActivityBatch.objects.get(reference="known")


def totals(api: Any, group_by: str, batch: str = "") -> dict[Any, tuple[float, int]]:
    response = api.get(f"/api/emissions/totals/?group_by={group_by}&batch={batch}")
    assert response.status_code == 200
    return {t["key"]: (t["kg_co2e"], t["activities"]) for t in response.json()["totals"]}


def test_it_calculates_with_the_factor_valid_on_each_date(known_batch: ActivityBatch) -> None:
    assert known_batch.status == BatchStatus.DONE
    kg = dict(known_batch.activities.values_list("line_number", "kg_co2e"))
    # 1000 kWh x 0.2; 100 l diesel x 2.5 (2023) and x 2.6 (2024); 2000 km x 0.15; no factor.
    assert kg == {2: 200, 3: 250, 4: 260, 5: 300, 6: None}
    assert known_batch.total_kg_co2e == 1010
    assert known_batch.uncalculated_count == 1


def test_it_totals_per_scope_category_site_and_month(api: Any, known_batch: ActivityBatch) -> None:
    assert totals(api, "scope") == {1: (510.0, 2), 2: (200.0, 1), 3: (300.0, 1)}
    assert totals(api, "category", "known") == {
        "business travel": (300.0, 1),
        "mobile combustion": (510.0, 2),
        "purchased electricity": (200.0, 1),
    }
    assert totals(api, "site", str(known_batch.pk)) == {"site-a": (450.0, 2), "site-b": (560.0, 2)}
    assert totals(api, "month") == {
        "2023-12": (250.0, 1),
        "2024-01": (460.0, 2),
        "2024-02": (300.0, 1),
    }
    grand = api.get("/api/emissions/totals/?group_by=scope").json()["total_kg_co2e"]
    assert grand == 1010.0


def test_it_lets_the_latest_starting_factor_win_where_validities_overlap(
    known_batch: ActivityBatch,
) -> None:
    EmissionFactor.objects.create(
        activity_type="electricity_grid",
        unit="kWh",
        kg_co2e_per_unit="0.1",
        valid_from="2024-01-01",
        valid_to="2024-06-30",
    )
    services.calculate(known_batch.pk)
    assert known_batch.activities.get(line_number=2).kg_co2e == 100


def test_it_names_bad_totals_parameters(api: Any, db: Any) -> None:
    response = api.get("/api/emissions/totals/?group_by=planet")
    assert response.status_code == 400
    assert response.json() == {
        "errors": {"group_by": "must be one of scope, category, site, month"}
    }


def test_it_refuses_to_calculate_without_the_token(api: Any, known_batch: ActivityBatch) -> None:
    assert api.post(f"/api/batches/{known_batch.pk}/calculate/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_worker_calculates_a_batch_queued_by_the_api(
    api: Any, auth: dict[str, str], factors: Any, celery_worker_process: Any
) -> None:
    batch_id = upload_csv(api, auth, csv_text(KNOWN_ROWS)).json()["id"]
    response = api.post(f"/api/batches/{batch_id}/calculate/", headers=auth)
    assert response.status_code == 202
    assert response.json()["status"] == "calculating"
    assert api.get(f"/api/batches/{batch_id}/").json()["status"] == "calculating"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = api.get(f"/api/batches/{batch_id}/").json()
        if detail["status"] != "calculating":
            break
        time.sleep(0.2)
    assert detail["status"] == "done"
    assert detail["total_kg_co2e"] == 1010.0
    assert [s["kg_co2e"] for s in detail["scopes"]] == [510.0, 200.0, 300.0]
