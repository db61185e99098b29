from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from emissions.models import Activity, ActivityBatch, BatchStatus
from tests.emissions.conftest import KNOWN_ROWS, csv_text, many_rows, upload_csv


def test_it_keeps_good_rows_and_reports_every_bad_one(api: Any, auth: dict[str, str]) -> None:
    rows = many_rows(1200)
    rows[9] = (5, *rows[9][1:])  # line 11
    rows[499] = (*rows[499][:3], "lots", *rows[499][4:])  # line 501
    response = upload_csv(api, auth, csv_text(rows), reference="acme-2024")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["row_count"], body["error_count"]) == ("uploaded", 1198, 2)
    assert [(e["line"], e["reason"]) for e in body["errors"]] == [
        (11, "scope: must be 1, 2 or 3"),
        (501, "quantity: is not a number ('lots')"),
    ]
    batch = ActivityBatch.objects.get(reference="acme-2024")
    assert batch.activities.count() == 1198
    assert not batch.activities.filter(line_number__in=[11, 501]).exists()
    assert batch.activities.get(line_number=2).quantity == 1


def test_it_marks_a_batch_without_good_rows_failed(api: Any, auth: dict[str, str]) -> None:
    response = upload_csv(api, auth, csv_text([(9, "c", "t", "1", "u", "2024-01-01", "s")]))
    assert response.status_code == 201
    assert response.json()["status"] == BatchStatus.FAILED


def test_it_accepts_a_json_object_with_metadata(api: Any, auth: dict[str, str]) -> None:
    activities = [
        dict(
            zip(
                ("scope", "category", "activity_type", "quantity", "unit", "date", "site"),
                row,
                strict=True,
            )
        )
        for row in KNOWN_ROWS
    ]
    payload = {
        "organisation": "Acme",
        "period": "2024-Q1",
        "reference": "acme-q1",
        "activities": activities,
    }
    response = api.post(
        "/api/batches/", data=json.dumps(payload), content_type="application/json", headers=auth
    )
    assert response.status_code == 201
    assert response.json()["row_count"] == len(KNOWN_ROWS)
    assert ActivityBatch.objects.get(reference="acme-q1").period == "2024-Q1"


def test_it_accepts_a_multipart_file(api: Any, auth: dict[str, str]) -> None:
    upload = SimpleUploadedFile("data.csv", csv_text(KNOWN_ROWS).encode(), "text/csv")
    response = api.post(
        "/api/batches/", {"file": upload, "organisation": "Acme", "period": "2024-03"}, headers=auth
    )
    assert response.status_code == 201
    assert response.json()["row_count"] == len(KNOWN_ROWS)


def test_it_requires_the_token_for_writes(api: Any) -> None:
    no_token = upload_csv(api, {}, csv_text(KNOWN_ROWS))
    assert no_token.status_code == 401
    assert no_token["WWW-Authenticate"].startswith("Bearer")
    wrong = upload_csv(api, {"Authorization": "Bearer not-the-token"}, csv_text(KNOWN_ROWS))
    assert wrong.status_code == 401
    assert "not-the-token" not in wrong.content.decode()
    assert not ActivityBatch.objects.exists()


def test_it_names_each_bad_field_of_the_metadata(api: Any, auth: dict[str, str]) -> None:
    upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="taken")
    response = upload_csv(api, auth, csv_text(KNOWN_ROWS), period="24", reference="taken")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"period", "reference"}
    assert "YYYY-Qn" in errors["period"]
    assert "is taken" in errors["reference"]


def test_it_refuses_unreadable_uploads(api: Any, auth: dict[str, str]) -> None:
    bad_type = api.post("/api/batches/", data="x", content_type="application/xml", headers=auth)
    assert bad_type.status_code == 415
    bad_json = api.post("/api/batches/", data="[{", content_type="application/json", headers=auth)
    assert bad_json.status_code == 400
    assert "body" in bad_json.json()["errors"]
    no_header = upload_csv(api, auth, "1,2,3\n")
    assert no_header.status_code == 400
    assert "header" in no_header.json()["errors"]


def test_it_replaces_the_rows_on_reupload(api: Any, auth: dict[str, str]) -> None:
    batch_id = upload_csv(api, auth, csv_text(many_rows(10)), reference="re").json()["id"]
    response = api.put(
        "/api/batches/re/", data=csv_text(KNOWN_ROWS[:2]), content_type="text/csv", headers=auth
    )
    assert response.status_code == 200
    assert response.json()["row_count"] == 2
    assert Activity.objects.filter(batch_id=batch_id).count() == 2


def test_it_answers_404_in_json(api: Any) -> None:
    assert api.get("/api/batches/404404/").json() == {"errors": {"batch": "no batch '404404'"}}
    assert api.get("/api/batches/no-such/").status_code == 404
    assert api.get("/api/nowhere/").status_code == 404


def test_it_answers_405_for_other_methods(api: Any) -> None:
    response = api.delete("/api/activities/")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_it_stores_awkward_csv_values_exactly(api: Any, auth: dict[str, str]) -> None:
    text = (
        "site,date,unit,quantity,activity_type,category,scope\n"  # another column order
        '"tab\there",2024-01-02,kWh,1,electricity_grid,"back\\slash",2\n'
        '"new\nline", 2024-01-03 ,kWh, 2.5 ,electricity_grid,purchased electricity, 2 \n'
        "plain,2024-02-30,kWh,1,electricity_grid,purchased electricity,2\n"
        "plain,2024-01-04,kWh,\u0661\u0662,electricity_grid,purchased electricity,2\n"
        "plain,2024-01-05,kWh,1e3,electricity_grid,purchased electricity,2\n"
        "nul\x00,2024-01-06,kWh,1,electricity_grid,purchased electricity,2\n"
    )
    response = upload_csv(api, auth, text, reference="awkward")
    assert response.status_code == 201
    body = response.json()
    # A quoted field spanning lines counts as the line the record ends on.
    assert [e["line"] for e in body["errors"]] == [5, 8]
    stored = ActivityBatch.objects.get(reference="awkward").activities.order_by("line_number")
    assert list(stored.values_list("line_number", "site", "category", "quantity", "date")) == [
        (2, "tab\there", "back\\slash", 1, date(2024, 1, 2)),
        (4, "new\nline", "purchased electricity", Decimal("2.5"), date(2024, 1, 3)),
        (6, "plain", "purchased electricity", 12, date(2024, 1, 4)),  # any Unicode digits
        (7, "plain", "purchased electricity", 1000, date(2024, 1, 5)),
    ]
