from __future__ import annotations

from typing import Any

import pytest

from emissions import services
from offgridperf import cache
from tests.emissions.conftest import KNOWN_ROWS, csv_text, many_rows, upload_csv


@pytest.fixture
def batch_id(api: Any, auth: dict[str, str], factors: Any) -> int:
    batch_id = upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="cached").json()["id"]
    services.calculate(batch_id)
    return batch_id


READS = [
    "/api/batches/{id}/",
    "/api/batches/cached/activities/?page=1&page_size=2",
    "/api/emissions/totals/?group_by=site",
    "/api/activities/?scope=1&page_size=5",
]


@pytest.mark.parametrize("path", READS)
def test_a_repeated_read_costs_no_query(
    api: Any, batch_id: int, path: str, django_assert_num_queries: Any
) -> None:
    url = path.format(id=batch_id)
    first = api.get(url)
    assert first.status_code == 200
    with django_assert_num_queries(0):
        again = api.get(url)
    assert again.json() == first.json()


def test_each_read_uses_its_strategy(api: Any, batch_id: int) -> None:
    for path in READS:
        api.get(path.format(id=batch_id))
    keys = cache.key_counts()
    # batch: the detail and the reference -> id mapping
    assert keys == {"batch": 2, "activity": 1, "emissions": 1, "query": 1}


def test_reads_are_fresh_after_a_reupload(api: Any, auth: dict[str, str], batch_id: int) -> None:
    before = {path: api.get(path.format(id=batch_id)).json() for path in READS}
    assert before[READS[2]]["total_kg_co2e"] == 1010.0
    api.put(
        "/api/batches/cached/",
        data=csv_text(many_rows(3, site="site-z")),
        content_type="text/csv",
        headers=auth,
    )
    detail = api.get(f"/api/batches/{batch_id}/").json()
    assert (detail["status"], detail["row_count"], detail["total_kg_co2e"]) == ("uploaded", 3, None)
    page = api.get(READS[1]).json()
    assert [row["site"] for row in page["results"]] == ["site-z", "site-z"]
    assert page["results"][0]["kg_co2e"] is None
    assert api.get(READS[2]).json()["totals"] == []  # nothing calculated any more
    assert api.get(READS[3]).json()["count"] == 0  # no scope-1 rows left


def test_reads_are_fresh_after_a_recalculation(api: Any, batch_id: int, factors: Any) -> None:
    assert api.get("/api/emissions/totals/?group_by=scope").json()["total_kg_co2e"] == 1010.0
    electricity = factors[0]
    electricity.kg_co2e_per_unit = 0.3
    electricity.save()
    services.calculate(batch_id)
    assert api.get("/api/emissions/totals/?group_by=scope").json()["total_kg_co2e"] == 1110.0
    assert api.get(f"/api/batches/{batch_id}/").json()["total_kg_co2e"] == 1110.0
    listing = api.get("/api/activities/?scope=2").json()
    assert listing["results"][0]["kg_co2e"] == 300.0


def test_a_new_batch_shows_in_the_listings(api: Any, auth: dict[str, str], batch_id: int) -> None:
    assert api.get("/api/activities/?site=site-q").json()["count"] == 0
    upload_csv(api, auth, csv_text(many_rows(4, site="site-q")))
    assert api.get("/api/activities/?site=site-q").json()["count"] == 4


def test_the_listing_filters_and_paginates(api: Any, batch_id: int) -> None:
    page = api.get("/api/activities/?scope=1&date_from=2024-01-01&page_size=1").json()
    assert page["count"] == 1
    assert page["results"][0]["date"] == "2024-01-01"
    response = api.get("/api/activities/?date_from=2024-02-01&date_to=2024-01-01&page=0")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"date_to", "page"}


def test_the_by_site_listing_sorts_largest_first_uncached(
    api: Any, batch_id: int, django_assert_num_queries: Any
) -> None:
    rows = api.get("/api/activities/by-site/?site=site-b").json()["results"]
    assert [row["kg_co2e"] for row in rows] == [300.0, 260.0, None]
    with django_assert_num_queries(1):  # tuning opportunity: never cached, always scanned
        api.get("/api/activities/by-site/?site=site-b")
    assert api.get("/api/activities/by-site/").json() == {
        "errors": {"site": "This field is required."}
    }


def test_the_batch_list_makes_one_query_per_batch(
    api: Any, auth: dict[str, str], batch_id: int, django_assert_num_queries: Any
) -> None:
    for _ in range(3):
        upload_csv(api, auth, csv_text(KNOWN_ROWS[:1]))
    with django_assert_num_queries(1 + 4):  # tuning opportunity: an N+1
        body = api.get("/api/batches/").json()
    assert body["count"] == 4
