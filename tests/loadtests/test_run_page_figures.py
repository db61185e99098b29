"""The run page as engineers find it: live figures, per-second percentiles only from
enough requests, readable buckets, labelled tables in the definition's order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.html import escape

from loadtests import charts
from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval, RunStatus
from stats.histogram import counts_index, highest_equivalent, histogram_of
from tests.loadtests.test_dashboard import make_run, page_json


def add_seconds(run: LoadTestRun, requests: list[int], latency_us: int = 8_000) -> None:
    """One stored second per entry, each with that many requests of `latency_us` (and one slow
    request of 900 ms, the value a per-second p99 of a few requests would show)."""
    start = run.started_at or timezone.now()
    rows = []
    for index, count in enumerate(requests):
        values = [latency_us] * (count - 1) + [900_000] if count else []
        histogram = histogram_of(values).encode() if count else ""
        rows.append(
            RunInterval(
                run=run,
                index=index,
                started_at=start + timedelta(seconds=index),
                requests=count,
                errors=1,
                latency_p50_ms=8.0 if count else None,
                latency_p95_ms=8.0 if count else None,
                latency_p99_ms=900.0 if count else None,
                service_p99_ms=900.0 if count else None,
                latency_histogram=histogram,
                service_histogram=histogram,
                errors_by_class={"timeout": 1},
            )
        )
    RunInterval.objects.bulk_create(rows)


def test_it_draws_no_per_second_p99_from_fewer_than_100_requests() -> None:
    counts = [10, 30, 40, 120, 5]
    fast, slow = counts_index(8_000), counts_index(900_000)  # histogram slots of 8 and 900 ms
    samples = [[(fast, c - 1), (slow, 1)] for c in counts]
    values, rolling = charts.gated_percentile(counts, [900.0] * 5, samples, "p99")
    # 10, 40 and 80 requests so far: no window reaches 100 until the fourth second's own 120.
    assert values[:3] == [None, None, None] and rolling[:3] == [False, False, False]
    assert values[3] == 900.0 and rolling[3] is False
    # 5 requests: merged with the 120 before it, the p99 of 125 requests (2 of them slow).
    assert rolling[4] is True and values[4] == highest_equivalent(slow) / 1000
    assert values[4] == pytest.approx(900.0, rel=1e-3)
    assert charts.PERCENTILE_MIN_REQUESTS == {"p50": 2, "p95": 20, "p99": 100}


def test_it_merges_fine_buckets_into_a_one_two_five_series() -> None:
    fine = charts.distribution_points(
        histogram_of([1_100, 1_900, 3_000, 7_000, 12_000]).log_buckets()
    )
    labels = [b["label"] for b in charts.one_two_five_buckets(fine)]
    assert labels == ["2", "5", "10", "20"]
    assert sum(b["count"] for b in charts.one_two_five_buckets(fine)) == 5


def test_it_labels_health_with_units_and_leaves_out_empty_values() -> None:
    rows = dict(
        charts.health_rows(
            {"cpu_pct_max": 41.5, "target_rate": None, "invalid_reason": "", "valid": True}
        )
    )
    assert rows == {"Generator CPU, max": "41.5 %"}


def test_it_orders_steps_as_the_definition_with_rate_and_share() -> None:
    columns, rows = charts.labelled_step_table(
        {"z-last": {"requests": 30, "errors": 0}, "a-first": {"requests": 10, "errors": 1}},
        order=["a-first", "z-last"],
        duration_s=10.0,
    )
    assert columns == ["Step", "Requests", "req/s", "Share", "Errors"]
    assert rows == [["a-first", "10", "1.00", "25.0%", "1"], ["z-last", "30", "3.00", "75.0%", "0"]]


@pytest.mark.django_db
def test_the_live_endpoint_sends_percentiles_and_errors_before_the_run_ends(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING, latency_p99_ms=None, errors_by_class={})
    add_seconds(run, [50, 50])
    state = admin_client.get(f"/runs/{run.pk}/live/?after=-1").json()
    html = state["live_summary_html"]
    assert 'id="live-summary-note"' in html and "timeout" in html
    assert "Listed when the run ends" not in html.split('id="steps"')[0]
    # 100 requests so far, two of them 900 ms: the p99 is 8 ms, the max 900.
    assert (
        ">8.00<" in html and ">900.00<" not in html.split("<th>service time")[0].split("p99.9")[0]
    )
    add_seconds_after(run, 2, [100])
    again = admin_client.get(f"/runs/{run.pk}/live/?after=1").json()
    assert again["timeline"]["x"] == [2]
    assert ">3<" in again["live_summary_html"] or "timeout" in again["live_summary_html"]


def add_seconds_after(run: LoadTestRun, first: int, requests: list[int]) -> None:
    start = run.started_at or timezone.now()
    for offset, count in enumerate(requests):
        RunInterval.objects.create(
            run=run,
            index=first + offset,
            started_at=start + timedelta(seconds=first + offset),
            requests=count,
            latency_p99_ms=8.0,
            latency_histogram=histogram_of([8_000] * count).encode(),
            errors_by_class={"timeout": 1},
        )


@pytest.mark.django_db
def test_the_page_draws_p99_only_from_100_requests_or_a_marked_rolling_window(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition)
    add_seconds(run, [10, 30, 40, 25, 120])
    data = page_json(admin_client.get(f"/runs/{run.pk}/"), "run-data")
    p99 = data["timeline"]["series"]["p99"]["mean"]
    rolling = data["timeline"]["rolling"]["p99"]
    assert p99[:3] == [None, None, None]  # 10, 40, 80 requests so far: nothing drawn
    assert rolling[3] is True and p99[3] is not None  # 25 + 40 + 30 + 10 = 105 requests
    assert rolling[4] is False and p99[4] == 900.0
    assert data["timeline"]["series"]["s99"]["mean"][:4] == [None] * 4
    p50 = data["timeline"]["series"]["p50"]["mean"]
    assert p50 == [8.0] * 5  # every second had the 2 requests a p50 needs


@pytest.mark.django_db
def test_the_summary_labels_health_and_orders_steps_as_defined(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    steps = [{"name": "z-login", "path": "/"}, {"name": "a-report", "path": "/r"}]
    run = make_run(
        definition,
        config={"load_model": "closed", "duration_s": 60, "steps": steps},
        steps_summary={"a-report": {"requests": 20, "errors": 0}, "z-login": {"requests": 40}},
        health={"valid": True, "cpu_pct_max": 40.0, "target_rate": None, "invalid_reason": ""},
    )
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert body.index("z-login") < body.index("a-report")
    for text in ("Generator CPU, max", "40 %", "req/s", "Share", "66.7%"):
        assert text in body
    for raw in ("cpu_pct_max", "target_rate", "invalid_reason"):
        assert raw not in body
    assert escape(charts.PERCENTILE_RULE) in body


@pytest.mark.django_db
def test_the_per_step_table_fills_in_while_the_run_goes(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING, steps_summary={}, errors_by_class={})
    for index, (ok, slow) in enumerate([(30, 10), (50, 10)]):
        RunInterval.objects.create(
            run=run,
            index=index,
            started_at=run.started_at + timedelta(seconds=index),
            requests=ok + slow,
            per_step={"ok": {"requests": ok, "errors": 0}, "slow": {"requests": slow, "errors": 2}},
        )
    html = admin_client.get(f"/runs/{run.pk}/live/?after=-1").json()["live_summary_html"]
    steps = html.split('id="steps"', 1)[1]
    assert "Listed when the run ends" not in steps
    # 80 and 20 requests so far, the errors of both seconds, each step's share of the 100.
    assert ">80<" in steps and ">20<" in steps and ">4<" in steps
    assert "80.0%" in steps and "20.0%" in steps


@pytest.mark.django_db
def test_the_open_model_load_chart_plots_the_seconds_mean_and_peak_in_flight(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition)
    start = run.started_at
    RunInterval.objects.bulk_create(
        [
            RunInterval(run=run, index=0, started_at=start, requests=2, in_flight=0,
                        in_flight_mean=0.4, in_flight_max=1),
            RunInterval(run=run, index=1, started_at=start, requests=2, in_flight=1),
        ]
    )  # fmt: skip
    series = page_json(admin_client.get(f"/runs/{run.pk}/"), "run-data")["timeline"]["series"]
    assert series["in_flight_mean"]["mean"] == [0.4, 1]  # the second before sampling: its reading
    assert series["in_flight_max"]["mean"] == [1, 1]
