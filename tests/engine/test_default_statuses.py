"""A step that names no expected statuses accepts 200-399 in both modes, by one rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.engine import run
from loadtests.engine.config import (
    DEFAULT_SUCCESS,
    DEFAULT_SUCCESS_TEXT,
    accepted_statuses,
    expected_statuses_text,
)
from tests.engine.helpers import closed, step

SCHEMA = Path(__file__).resolve().parents[2] / "loadtests/schema/loadtest-v1.schema.json"


def test_no_expected_statuses_means_any_of_200_to_399() -> None:
    assert accepted_statuses(()) == frozenset(DEFAULT_SUCCESS)
    assert DEFAULT_SUCCESS_TEXT == "200-399"
    assert accepted_statuses((201, 204)) == {201, 204}
    assert expected_statuses_text(()) == "200-399"
    assert expected_statuses_text((204, 201)) == "201, 204"
    assert expected_statuses_text([*range(200, 300), 500]) == "200-299, 500"


@pytest.mark.parametrize("mode", ["requests", "flow"])
def test_a_step_without_expected_statuses_counts_200_and_302_as_success(
    target: str, mode: str
) -> None:
    config = closed(
        target,
        step("/ok", expected_statuses=()),
        step("/status/302", name="moved", expected_statuses=()),
        mode=mode,
        duration_s=0.5,
        abort_error_rate_pct=None,
    )
    result = run(config)
    assert result.requests > 10
    assert result.errors == 0, result.errors_by_class


@pytest.mark.parametrize("mode", ["requests", "flow"])
def test_a_step_without_expected_statuses_still_counts_a_500_and_names_the_default(
    target: str, mode: str
) -> None:
    config = closed(
        target, step("/status/500", name="broken", expected_statuses=()), mode=mode, duration_s=0.3,
        abort_error_rate_pct=None,
    )  # fmt: skip
    result = run(config)
    assert result.requests > 0 and result.errors == result.requests
    sample = result.errors_by_class["status_500"]["sample"]
    assert sample == "broken: expected status 200-399, got 500"


def test_the_schema_describes_the_default_from_the_same_rule() -> None:
    schema = json.loads(SCHEMA.read_text())
    step_schema = schema["properties"]["steps"]["items"]["properties"]["expected_statuses"]
    assert f"any of {DEFAULT_SUCCESS_TEXT}" in step_schema["description"]
