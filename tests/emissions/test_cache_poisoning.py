from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from emissions import services
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv


@pytest.fixture
def batch_id(api: Any, auth: dict[str, str], factors: Any) -> int:
    batch_id = upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="poison").json()["id"]
    services.calculate(batch_id)
    return batch_id


GENUINE = {"category": "mobile combustion", "date_from": "2023-12-01"}
# One filter whose value spells the genuine query's other filter.
CRAFTED = {"category": "mobile combustion&date_from=2023-12-01"}


def test_it_does_not_serve_a_crafted_filter_the_genuine_answer(api: Any, batch_id: int) -> None:
    crafted = api.get(f"/api/activities/?{urlencode(CRAFTED)}")
    assert crafted.status_code == 200
    assert crafted.json()["count"] == 0  # no category has that name
    genuine = api.get(f"/api/activities/?{urlencode(GENUINE)}")
    assert genuine.json()["count"] == 2


def test_it_keeps_the_genuine_answer_apart_from_a_crafted_one_cached_later(
    api: Any, batch_id: int
) -> None:
    assert api.get(f"/api/activities/?{urlencode(GENUINE)}").json()["count"] == 2
    assert api.get(f"/api/activities/?{urlencode(CRAFTED)}").json()["count"] == 0
    assert api.get(f"/api/activities/?{urlencode(GENUINE)}").json()["count"] == 2


@pytest.mark.parametrize(
    ("crafted", "genuine"),
    [
        (
            {"category": "business travel&date_to=2024-12-31"},
            {"category": "business travel", "date_to": "2024-12-31"},
        ),
        (
            {"category": "mobile combustion&date_from=2024-01-01&date_to=2024-06-30"},
            {"category": "mobile combustion", "date_from": "2024-01-01", "date_to": "2024-06-30"},
        ),
        ({"category": "business travel&page=1"}, {"category": "business travel"}),
    ],
)
def test_it_keys_each_listing_by_all_of_its_filters(
    api: Any, batch_id: int, settings: Any, crafted: dict[str, str], genuine: dict[str, str]
) -> None:
    settings.CACHE_ENABLED = False
    expected = api.get(f"/api/activities/?{urlencode(genuine)}").json()
    assert expected["count"] > 0
    settings.CACHE_ENABLED = True
    assert api.get(f"/api/activities/?{urlencode(crafted)}").json()["count"] == 0
    assert api.get(f"/api/activities/?{urlencode(genuine)}").json() == expected
