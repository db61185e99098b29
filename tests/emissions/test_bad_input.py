"""Inputs that gave the emissions API a 500 (or a wrong answer)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from emissions import rows
from emissions.models import Activity, ActivityBatch
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def json_upload(activities: Any) -> str:
    return json.dumps({"organisation": "Acme", "period": "2024", "activities": activities})


# --- deeply nested JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [rows.MAX_JSON_DEPTH + 1, 900, 100_000])
def test_it_refuses_json_nested_too_deep_with_a_400(
    api: Any, auth: dict[str, str], depth: int
) -> None:
    body = '{"organisation": "Acme", "period": "2024", "activities": ' + nested(depth) + "}"
    response = api.post("/api/batches/", data=body, content_type="application/json", headers=auth)
    assert response.status_code == 400
    message = response.json()["errors"]["body"]
    assert f"nested deeper than {rows.MAX_JSON_DEPTH}" in message
    assert not ActivityBatch.objects.exists()


def test_it_refuses_deep_json_on_every_json_reading_endpoint(
    api: Any, auth: dict[str, str]
) -> None:
    upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="kept")
    deep = nested(100_000)
    reupload = api.put(
        "/api/batches/kept/", data=deep, content_type="application/json", headers=auth
    )
    assert reupload.status_code == 400
    assert "nested deeper" in reupload.json()["errors"]["body"]
    as_file = SimpleUploadedFile("rows.json", deep.encode(), "application/json")
    multipart = api.post(
        "/api/batches/", {"file": as_file, "organisation": "Acme", "period": "2024"}, headers=auth
    )
    assert multipart.status_code == 400
    assert "nested deeper" in multipart.json()["errors"]["file"]
    assert ActivityBatch.objects.get(reference="kept").row_count == len(KNOWN_ROWS)  # untouched


def test_it_accepts_json_up_to_the_depth_limit() -> None:
    assert rows.load_json(nested(rows.MAX_JSON_DEPTH)) is not None
    # Brackets inside strings are text, not nesting.
    assert rows.load_json(json.dumps(["[" * 1000, {"a": "{" * 1000}])) == [
        "[" * 1000,
        {"a": "{" * 1000},
    ]


# --- quantities that round past the column ---------------------------------------------------


def column_precision() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_name = 'emissions_activity' AND column_name = 'quantity'"
        )
        return cursor.fetchone()


def test_it_checks_quantities_against_the_columns_own_precision(db: Any) -> None:
    field = Activity._meta.get_field("quantity")
    assert column_precision() == (field.max_digits, field.decimal_places)
    assert (rows.QUANTITY.max_digits, rows.QUANTITY.decimal_places) == column_precision()


ROUNDS_OVER = "999999999999.99995"  # below 10^12, but 10^12 at four decimal places
LARGEST = "999999999999.9999"


def test_it_rejects_a_csv_quantity_that_rounds_past_the_column_and_keeps_the_rest(
    api: Any, auth: dict[str, str]
) -> None:
    rows_in = [KNOWN_ROWS[0], (*KNOWN_ROWS[1][:3], ROUNDS_OVER, *KNOWN_ROWS[1][4:]), KNOWN_ROWS[2]]
    rows_in.append((*KNOWN_ROWS[3][:3], LARGEST, *KNOWN_ROWS[3][4:]))
    response = upload_csv(api, auth, csv_text(rows_in), reference="rounding")
    assert response.status_code == 201
    body = response.json()
    assert (body["row_count"], body["error_count"]) == (3, 1)
    [error] = body["errors"]
    assert error["line"] == 3
    assert "quantity" in error["fields"]
    assert "decimal places" in error["fields"]["quantity"]
    batch = ActivityBatch.objects.get(reference="rounding")
    assert sorted(batch.activities.values_list("line_number", flat=True)) == [2, 4, 5]
    assert batch.activities.get(line_number=5).quantity == Decimal(LARGEST)


def test_it_rejects_a_json_quantity_that_rounds_past_the_column_and_keeps_the_rest(
    api: Any, auth: dict[str, str]
) -> None:
    activities = [dict(zip(rows.FIELDS, row, strict=True)) for row in KNOWN_ROWS[:3]]
    activities[1]["quantity"] = ROUNDS_OVER
    activities[2]["quantity"] = float(ROUNDS_OVER)  # a JSON number rounds the same way
    response = api.post(
        "/api/batches/", data=json_upload(activities), content_type="application/json", headers=auth
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["row_count"], body["error_count"]) == (1, 2)
    assert [e["line"] for e in body["errors"]] == [2, 3]
    assert {tuple(e["fields"]) for e in body["errors"]} == {("quantity",)}


def test_it_rejects_rounding_overflow_on_the_row_by_row_path_too() -> None:
    upload = rows.CsvUpload(csv_text([(*KNOWN_ROWS[0][:3], ROUNDS_OVER, *KNOWN_ROWS[0][4:])]))
    assert list(upload.rows()) == []
    assert upload.report.errors[0]["line"] == 2
    assert "quantity" in upload.report.errors[0]["fields"]


# --- digits that are not ASCII ---------------------------------------------------------------


@pytest.fixture
def three_batches(api: Any, auth: dict[str, str]) -> list[int]:
    ids = [
        upload_csv(api, auth, csv_text(KNOWN_ROWS), reference=f"b{n}").json()["id"]
        for n in range(3)
    ]
    return ids


@pytest.mark.parametrize(
    "ref", ["²", "٣", "３", "1_0", "+1", " 1", "99999999999999999999999", "1" * 5000]
)
def test_it_takes_only_ascii_digits_as_a_batch_id(
    api: Any, auth: dict[str, str], three_batches: list[int], ref: str
) -> None:
    from urllib.parse import quote

    for path in (f"/api/batches/{quote(ref)}/", f"/api/batches/{quote(ref)}/activities/"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "batch" in response.json()["errors"]
    totals = api.get(f"/api/emissions/totals/?group_by=scope&batch={quote(ref)}")
    assert totals.status_code == (400 if len(ref) > 64 else 404)  # 400: longer than a reference
    assert "batch" in totals.json()["errors"]
    calculate = api.post(f"/api/batches/{quote(ref)}/calculate/", headers=auth)
    assert calculate.status_code == 404
    put = api.put(f"/api/batches/{quote(ref)}/", data="x", content_type="text/csv", headers=auth)
    assert put.status_code == 404


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_it_does_not_resolve_foreign_digits_to_the_batch_they_spell(
    api: Any, auth: dict[str, str], three_batches: list[int], digits: dict[int, str]
) -> None:
    from urllib.parse import quote

    spelled = quote(str(three_batches[1]).translate(digits))
    assert api.get(f"/api/batches/{spelled}/").status_code == 404
    assert api.get(f"/api/batches/{spelled}/activities/").status_code == 404
    assert api.get(f"/api/emissions/totals/?group_by=site&batch={spelled}").status_code == 404
    assert api.post(f"/api/batches/{spelled}/calculate/", headers=auth).status_code == 404
    replaced = api.put(
        f"/api/batches/{spelled}/",
        data=csv_text(KNOWN_ROWS[:1]),
        content_type="text/csv",
        headers=auth,
    )
    assert replaced.status_code == 404
    assert ActivityBatch.objects.get(pk=three_batches[1]).row_count == len(KNOWN_ROWS)


@pytest.mark.parametrize("name", ["page", "page_size"])
@pytest.mark.parametrize("value", ["٣", "²", "３", "1_0", "1.0"])
def test_it_takes_only_ascii_digits_as_a_page_number(
    api: Any, three_batches: list[int], name: str, value: str
) -> None:
    from urllib.parse import urlencode

    for path in (
        "/api/activities/",
        f"/api/batches/{three_batches[0]}/activities/",
        "/api/activities/by-site/?site=site-a&",
    ):
        separator = "" if path.endswith("&") else "?"
        response = api.get(f"{path}{separator}{urlencode({name: value})}")
        assert response.status_code == 400, path
        assert "digits" in response.json()["errors"][name]


def test_it_still_takes_ascii_ids_and_pages(api: Any, three_batches: list[int]) -> None:
    first = three_batches[0]
    assert api.get(f"/api/batches/{first}/").json()["id"] == first
    page = api.get(f"/api/batches/{first}/activities/?page=2&page_size=2").json()
    assert [row["line_number"] for row in page["results"]] == [4, 5]
    assert api.get(f"/api/emissions/totals/?group_by=scope&batch={first}").status_code == 200


def test_it_refuses_a_period_with_digits_that_are_not_ascii(api: Any, auth: dict[str, str]) -> None:
    response = upload_csv(api, auth, csv_text(KNOWN_ROWS), period="٢٠٢٤")
    assert response.status_code == 400
    assert "YYYY" in response.json()["errors"]["period"]
