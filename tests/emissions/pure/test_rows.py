from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from emissions.rows import UploadFormatError, parse_csv, parse_json


def test_it_keeps_good_rows_and_reports_bad_ones_by_line() -> None:
    text = (
        "Scope,Category,Activity_Type,Quantity,Unit,Date,Site\n"
        "1,mobile combustion,diesel,12.5,litre,2024-01-02,depot\n"
        "4,mobile combustion,diesel,abc,litre,2024-02-30,depot\n"
        "\n"
        "2,purchased electricity,electricity_grid,100,kWh,2024-01-03\n"
        "3,waste,waste_landfill,-1,tonne,2024-01-04,depot\n"
    )
    parsed = parse_csv(text)
    assert [row.line for row in parsed.rows] == [2]
    assert parsed.rows[0].quantity == Decimal("12.5000")
    assert parsed.rows[0].date == date(2024, 1, 2)
    assert parsed.error_count == 3
    by_line = {error["line"]: error for error in parsed.errors}
    assert set(by_line) == {3, 5, 6}
    assert by_line[3]["fields"] == {
        "scope": "must be 1, 2 or 3",
        "quantity": "is not a number ('abc')",
        "date": "is not a valid date ('2024-02-30')",
    }
    assert "scope: must be 1, 2 or 3" in by_line[3]["reason"]
    assert by_line[5]["fields"] == {"row": "has 6 fields; the header has 7"}
    assert by_line[6]["fields"] == {"quantity": "must not be negative"}


def test_it_names_missing_columns() -> None:
    with pytest.raises(UploadFormatError) as caught:
        parse_csv("scope,category\n1,x\n")
    assert caught.value.field == "header"
    assert "activity_type, quantity, unit, date, site" in caught.value.message


def test_it_reads_json_objects_and_numbers() -> None:
    parsed = parse_json(
        [
            {
                "scope": 1,
                "category": "c",
                "activity_type": "t",
                "quantity": 2.5,
                "unit": "u",
                "date": "2024-05-01",
                "site": "s",
            },
            "not an object",
            {
                "scope": True,
                "category": "",
                "activity_type": "t",
                "quantity": "1e400",
                "unit": "u" * 17,
                "date": 20240501,
                "site": "s",
            },
        ]
    )
    assert [row.quantity for row in parsed.rows] == [Decimal("2.5000")]
    assert parsed.errors[0] == {
        "line": 2,
        "reason": "row: must be an object",
        "fields": {"row": "must be an object"},
    }
    assert parsed.errors[1]["fields"] == {
        "scope": "must be 1, 2 or 3",
        "category": "is required",
        "quantity": "must be below 1,000,000,000,000",
        "unit": "is longer than 16 characters",
        "date": "must be a date as YYYY-MM-DD",
    }


def test_it_caps_the_stored_report_but_counts_every_bad_row() -> None:
    text = (
        "scope,category,activity_type,quantity,unit,date,site\n" + "9,c,t,1,u,2024-01-01,s\n" * 1500
    )
    parsed = parse_csv(text)
    assert parsed.error_count == 1500
    assert len(parsed.errors) == 1000
