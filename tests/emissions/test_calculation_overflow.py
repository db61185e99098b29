"""A factor x quantity too large for kg_co2e: that row gets the error, the others are calculated."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from emissions import services, tasks
from emissions.models import Activity, ActivityBatch, BatchStatus, EmissionFactor
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv

HUGE_FACTOR = Decimal("99999999.999999")  # the most numeric(14,6) holds
# 10^11 x 10^8 = 10^19 kg: far beyond numeric(20,6); 10 x 10^8 = 10^9 kg fits.
OVERFLOWING = (3, "waste", "dark_matter", "100000000000", "tonne", "2024-02-12", "site-c")
FITTING = (3, "waste", "dark_matter", "10", "tonne", "2024-02-13", "site-c")


@pytest.fixture
def huge_factor(factors: Any) -> EmissionFactor:
    return EmissionFactor.objects.create(
        activity_type="dark_matter",
        unit="tonne",
        kg_co2e_per_unit=HUGE_FACTOR,
        valid_from=date(2020, 1, 1),
        source="test",
    )


@pytest.fixture
def batch(api: Any, auth: dict[str, str], huge_factor: EmissionFactor) -> ActivityBatch:
    rows = [*KNOWN_ROWS, OVERFLOWING, FITTING]  # lines 2-6, then 7 and 8
    response = upload_csv(api, auth, csv_text(rows), reference="overflow")
    assert response.status_code == 201
    return ActivityBatch.objects.get(reference="overflow")


def test_it_calculates_every_row_that_fits_and_reports_the_one_that_does_not(
    batch: ActivityBatch,
) -> None:
    result = tasks.calculate_batch(batch.pk)  # the task body, as the worker runs it
    assert result["status"] == BatchStatus.DONE
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE
    kg = dict(batch.activities.values_list("line_number", "kg_co2e"))
    assert kg == {2: 200, 3: 250, 4: 260, 5: 300, 6: None, 7: None, 8: HUGE_FACTOR * 10}
    assert batch.total_kg_co2e == 1010 + HUGE_FACTOR * 10
    assert batch.uncalculated_count == 2  # line 6: no factor; line 7: too large
    [error] = [e for e in batch.error_report if e["line"] == 7]
    assert set(error["fields"]) == {"kg_co2e"}
    assert "numeric(20,6)" in error["fields"]["kg_co2e"]


def test_it_shows_the_calculation_error_in_the_batch_detail(api: Any, batch: ActivityBatch) -> None:
    services.calculate(batch.pk)
    detail = api.get(f"/api/batches/{batch.pk}/").json()
    assert (detail["status"], detail["uncalculated_count"]) == ("done", 2)
    assert [e["line"] for e in detail["errors"]] == [7]
    assert detail["total_kg_co2e"] == pytest.approx(1010 + float(HUGE_FACTOR) * 10)


def test_it_forgets_the_last_calculations_errors_when_calculating_again(
    batch: ActivityBatch, huge_factor: EmissionFactor
) -> None:
    services.calculate(batch.pk)
    huge_factor.kg_co2e_per_unit = Decimal("0.5")
    huge_factor.save()
    services.calculate(batch.pk)
    batch.refresh_from_db()
    assert batch.error_report == []
    assert batch.uncalculated_count == 1
    assert Activity.objects.get(batch=batch, line_number=7).kg_co2e == Decimal("5E10")


def test_it_keeps_the_upload_errors_beside_the_calculation_errors(
    api: Any, auth: dict[str, str], huge_factor: EmissionFactor
) -> None:
    rows = [OVERFLOWING, (9, *FITTING[1:]), FITTING]
    batch_id = upload_csv(api, auth, csv_text(rows)).json()["id"]
    services.calculate(batch_id)
    services.calculate(batch_id)  # twice: the calculation's entries are replaced, not added
    batch = ActivityBatch.objects.get(pk=batch_id)
    assert [(e["line"], sorted(e["fields"])) for e in batch.error_report] == [
        (3, ["scope"]),
        (2, ["kg_co2e"]),
    ]
    assert (batch.error_count, batch.uncalculated_count, batch.status) == (1, 1, "done")


def test_it_fails_a_batch_where_no_row_fits_and_says_why(
    api: Any, auth: dict[str, str], huge_factor: EmissionFactor
) -> None:
    batch_id = upload_csv(api, auth, csv_text([OVERFLOWING])).json()["id"]
    services.calculate(batch_id)
    batch = ActivityBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.uncalculated_count) == (BatchStatus.FAILED, 1)
    assert batch.error_report[0]["line"] == 2
