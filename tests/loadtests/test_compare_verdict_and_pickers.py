"""The compare page: the verdict's confidence, per-step deltas, run pickers grouped by definition,
and where "Compare with baseline" is offered."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests import compare
from loadtests.models import LoadTestDefinition, RunStatus
from tests.loadtests.test_dashboard import make_run

pytestmark = pytest.mark.django_db


# -- compare: the verdict's confidence ----------------------------------------------------


def test_the_verdict_on_one_baseline_run_says_not_enough_history(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    baseline = make_run(definition, p95=20.0)
    slightly_slower = make_run(definition, p95=21.5)  # +7.5%: within the 10% margin
    response = admin_client.get(f"/runs/compare/?b={slightly_slower.pk}")
    assert response.status_code == 200 and response.context["a"] == baseline
    verdict = response.context["verdict"]
    assert verdict.outcome == "inconclusive" and verdict.confidence == "low"
    shown = response.content.decode().split('id="verdict"', 1)[1].split("</p>", 1)[0]
    assert "<strong>Inconclusive</strong>" in shown
    assert "not enough history to judge noise" in shown and "1 baseline run, 3 needed" in shown
    assert "Regression" not in shown and "Improvement" not in shown


def test_a_change_beyond_the_margin_is_judged_but_marked_low_confidence(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    make_run(definition, p95=20.0)
    slower = make_run(definition, p95=40.0, status=RunStatus.FAILED)
    response = admin_client.get(f"/runs/compare/?b={slower.pk}")
    verdict = response.context["verdict"]
    assert verdict.outcome == "regression" and verdict.confidence == "low"
    assert "Low confidence: not enough history to judge noise" in response.content.decode()


def test_with_enough_history_a_small_change_is_no_significant_change(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    for p95 in (20.0, 20.5, 19.5, 20.0):
        make_run(definition, p95=p95)
    later = make_run(definition, p95=21.0)
    response = admin_client.get(f"/runs/compare/?b={later.pk}")
    verdict = response.context["verdict"]
    assert verdict.outcome == "no significant change" and verdict.confidence == "measured"
    assert "Noise measured over 4 baseline runs." in response.content.decode()


def test_the_page_prints_the_confidence_rule_from_its_constant(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    make_run(definition)
    later = make_run(definition)
    body = admin_client.get(f"/runs/compare/?b={later.pk}").content.decode()
    assert compare.NOISE_MIN_RUNS == 3 and compare.REGRESSION_PCT == 10.0
    assert "Confidence: with fewer than 3 baseline runs there is not enough history" in body
    assert "a p95 change within 10% is inconclusive" in body


def test_the_verdict_function_never_judges_a_small_change_without_noise() -> None:
    a = {"latency_p95_ms": 100.0, "error_rate_pct": 0.0}
    for p95 in (91.0, 95.0, 100.0, 105.0, 109.9):
        outcome = compare.verdict(a, {"latency_p95_ms": p95, "error_rate_pct": 0.0}, None)
        assert outcome.outcome == "inconclusive"
    assert compare.verdict(a, {"latency_p95_ms": 111.0}, None).outcome == "regression"
    assert compare.verdict(a, {"latency_p95_ms": 89.0}, None).outcome == "improvement"
    assert compare.verdict(a, {"latency_p95_ms": 105.0}, 1.0).outcome == "no significant change"


# -- compare: per-step deltas, pickers ------------------------------------------------------


def test_it_shows_per_step_deltas_in_the_definitions_order(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    a = make_run(
        definition,
        steps_summary={
            "login": {"requests": 100, "errors": 0, "p50_ms": 5, "p95_ms": 10, "p99_ms": 20},
            "search": {"requests": 200, "errors": 2, "p50_ms": 8, "p95_ms": 40, "p99_ms": 80},
        },
    )
    b = make_run(
        definition,
        steps_summary={
            "login": {"requests": 100, "errors": 0, "p50_ms": 5, "p95_ms": 12, "p99_ms": 20},
            "search": {"requests": 200, "errors": 4, "p50_ms": 8, "p95_ms": 30, "p99_ms": 60},
            "logout": {"requests": 50, "errors": 0, "p50_ms": 1, "p95_ms": 2, "p99_ms": 3},
        },
    )
    response = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}")
    rows = response.context["step_deltas"]
    assert [row["step"] for row in rows] == ["login", "search", "logout"]
    login_p95 = rows[0]["cells"][1]
    assert (login_p95["a"], login_p95["b"], login_p95["change_pct"], login_p95["better"]) == (
        10,
        12,
        20.0,
        False,
    )
    search_errors = rows[1]["cells"][3]
    assert (search_errors["a"], search_errors["b"], search_errors["change_pct"]) == (
        1.0,
        2.0,
        100.0,
    )
    assert rows[1]["cells"][1]["better"] is True
    assert rows[2]["in_a"] is False and rows[2]["cells"][1]["a"] is None
    body = response.content.decode()
    assert 'id="step-deltas"' in body and "(only in b)" in body and "+20.0%" in body


def test_it_offers_recent_runs_in_lists_grouped_by_definition(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    other = LoadTestDefinition.objects.create(name="checkout", target_base_url="http://x.test")
    first, second = make_run(definition), make_run(definition)
    elsewhere = make_run(other)
    make_run(definition, status=RunStatus.RUNNING)  # unfinished: not offered
    response = admin_client.get(f"/runs/compare/?a={first.pk}&b={second.pk}")
    body = response.content.decode()
    assert '<input type="number"' not in body
    groups = {name: [run.pk for run in runs] for name, runs in response.context["choices"]}
    assert groups == {"checkout": [elsewhere.pk], "smoke": [second.pk, first.pk]}
    picker_a = body.split('<select name="a" id="pick-a">', 1)[1].split("</select>", 1)[0]
    picker_b = body.split('<select name="b" id="pick-b">', 1)[1].split("</select>", 1)[0]
    assert '<optgroup label="smoke">' in picker_a and '<optgroup label="checkout">' in picker_a
    assert f'<option value="{first.pk}" selected>' in picker_a
    assert f'<option value="{second.pk}" selected>' in picker_b
    # Empty, the page still offers the lists (and explains what is missing).
    empty = admin_client.get("/runs/compare/").content.decode()
    assert '<optgroup label="smoke">' in empty and "Give a run id in a or b" in empty


def test_the_pickers_select_the_defaulted_baseline(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    baseline, later = make_run(definition), make_run(definition)
    body = admin_client.get(f"/runs/compare/?b={later.pk}").content.decode()
    picker_a = body.split('<select name="a" id="pick-a">', 1)[1].split("</select>", 1)[0]
    assert f'<option value="{baseline.pk}" selected>' in picker_a


# -- "Compare with baseline" -------------------------------------------------------------------


def test_compare_with_baseline_is_offered_only_where_there_is_one(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    first = make_run(definition, status=RunStatus.FAILED)
    assert 'id="compare-link"' not in admin_client.get(f"/runs/{first.pk}/").content.decode()
    adhoc = make_run(None)
    assert 'id="compare-link"' not in admin_client.get(f"/runs/{adhoc.pk}/").content.decode()
    passing = make_run(definition)
    assert 'id="compare-link"' not in admin_client.get(f"/runs/{passing.pk}/").content.decode()
    later = make_run(definition)
    assert 'id="compare-link"' in admin_client.get(f"/runs/{later.pk}/").content.decode()
    # A chosen baseline counts for every other run, older ones too.
    LoadTestDefinition.objects.filter(pk=definition.pk).update(baseline_run=later)
    assert 'id="compare-link"' in admin_client.get(f"/runs/{first.pk}/").content.decode()
    assert admin_client.get(f"/runs/compare/?b={first.pk}").status_code == 200
