"""One capture's page, by kind, its status view and its artefact downloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

from profiling import trend
from profiling.models import CaptureKind, CaptureStatus, FunctionStat, ProfileCapture
from profiling.pages import FUNCTIONS_SHOWN, FUNCTIONS_TOP, MAX_TRACE_EVENTS
from tests.profiling.pages.conftest import Captures, chrometrace, cpu_capture, trace_capture

pytestmark = pytest.mark.django_db


def page(capture: ProfileCapture) -> str:
    return reverse("profiling:detail", args=[capture.pk])


def artefact(capture: ProfileCapture, name: str) -> str:
    return reverse("profiling:artefact", args=[capture.pk, name])


def script_data(response: Any, element_id: str) -> Any:
    html = response.content.decode()
    start = html.index(f'<script id="{element_id}" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


@pytest.mark.parametrize(
    "url",
    [
        reverse("profiling:detail", args=[1]),
        reverse("profiling:status_json", args=[1]),
        reverse("profiling:artefact", args=[1, "speedscope"]),
        reverse("profiling:diff"),
    ],
)
def test_it_sends_anonymous_visitors_to_the_login_page(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_draws_a_cpu_capture_as_a_flame_graph_with_its_top_functions(
    viewer_client: Any, captures: Captures
) -> None:
    response = viewer_client.get(page(captures.cpu))
    assert response.status_code == 200
    flame = script_data(response, "flame-data")
    assert (flame["name"], flame["value"]) == ("all", 10)
    thread = flame["children"][0]
    assert thread["name"] == "MainThread"
    handle = thread["children"][0]["children"][0]
    assert [(c["name"], c["value"]) for c in handle["children"]] == [
        ("work_hot (app.py:20)", 6),
        ("parse (io.py:5)", 3),
    ]
    functions = response.context["functions"]
    assert [(f.function, f.self_samples) for f in functions[:2]] == [("work_hot", 6), ("parse", 3)]
    html = response.content.decode()
    assert 'id="flamegraph"' in html and "profiling/flamegraph.js" in html
    assert "app.py:20" in html and "60.0" in html
    assert artefact(captures.cpu, "speedscope") in html
    assert artefact(captures.cpu, "collapsed") in html


def test_it_keeps_the_top_functions_when_the_profile_file_is_gone(
    viewer_client: Any, captures: Captures
) -> None:
    captures.cpu.artefacts = {}
    captures.cpu.save()
    response = viewer_client.get(page(captures.cpu))
    assert response.status_code == 200
    assert response.context["flame"] is None
    assert "no longer on disk" in response.content.decode()
    assert len(response.context["functions"]) == 4


def test_it_charts_memory_with_the_trend_line_and_the_verdict(
    viewer_client: Any, captures: Captures
) -> None:
    response = viewer_client.get(page(captures.memory))
    assert response.status_code == 200
    chart = script_data(response, "memory-data")
    assert len(chart["t"]) == 60
    assert chart["rss_mb"][0] == 100.0 and chart["uss_mb"][0] == 80.0
    summary = captures.memory.summary
    start, end = chart["trend"]
    assert start["x"] == summary["warmup_s"] and end["x"] == 59.0
    # 2 MB/s: the fitted line rises 120 MB/min from 100 MB at t=0.
    assert end["y"] == pytest.approx(100.0 + 2.0 * 59.0, abs=0.01)
    html = response.content.decode()
    assert 'id="memory-verdict"' in html and "Leak" in html
    assert "120.000 MB/min" in html
    assert "leaky.py:12" in html and "+4.8\xa0MB" in html
    assert "main.py:3<br>leaky.py:12" in html  # by traceback, innermost last
    assert response.context["gc_stats"] == [
        {"generation": 0, "collections": 31, "collected": 900, "pause_ms": 1.25},
        {"generation": 1, "collections": 2, "collected": 40, "pause_ms": 0.5},
        {"generation": 2, "collections": 1, "collected": 7, "pause_ms": 3.0},
    ]


def test_it_prints_the_verdict_rules_from_the_trend_constants(
    viewer_client: Any, captures: Captures
) -> None:
    response = viewer_client.get(page(captures.memory))
    html = response.content.decode()
    assert 'id="verdict-rules"' in html
    for rule in trend.rules(captures.memory.summary["threshold_mb_per_min"]):
        assert escape(rule) in html
    assert f"under {trend.MIN_DURATION_S:g} s" not in html  # a minute-long capture is judged
    assert "±0.25 MB/min" in html and "Growth against noise" in html


def test_it_reads_growth_and_gc_given_as_lists_per_entry(
    viewer_client: Any, captures: Captures
) -> None:
    captures.memory.summary = {
        **captures.memory.summary,
        "tracemalloc": [{"where": "cache.py:7", "size_diff": -2048, "count_diff": -3}],
        "gc": [{"generation": 0, "collections": 4, "collected": 10, "pause_ms": 0.25}],
    }
    captures.memory.save()
    response = viewer_client.get(page(captures.memory))
    html = response.content.decode()
    assert "cache.py:7" in html and "-2.0\xa0KB" in html
    assert response.context["gc_stats"][0]["collections"] == 4


def test_it_says_why_the_agent_gave_no_figures(viewer_client: Any, captures: Captures) -> None:
    captures.memory.summary = {
        k: v for k, v in captures.memory.summary.items() if k not in ("tracemalloc", "gc")
    } | {"agent_error": "the agent did not answer"}
    captures.memory.save()
    html = viewer_client.get(page(captures.memory)).content.decode()
    assert 'id="agent-error"' in html and "the agent did not answer" in html


def test_it_renders_a_memory_capture_without_tracemalloc_or_gc(
    viewer_client: Any, captures: Captures
) -> None:
    captures.memory.summary = {
        k: v for k, v in captures.memory.summary.items() if k not in ("tracemalloc", "gc")
    }
    captures.memory.save()
    html = viewer_client.get(page(captures.memory)).content.decode()
    assert 'id="memory-verdict"' in html
    assert 'id="tracemalloc"' not in html and 'id="gc"' not in html


def test_it_lists_every_thread_with_its_flags_and_stack(
    viewer_client: Any, captures: Captures
) -> None:
    html = viewer_client.get(page(captures.threads)).content.decode()
    assert 'data-thread="ledger-writer"' in html and 'data-thread="MainThread"' in html
    assert "holds the GIL" in html
    assert html.index("write_rows") < html.index("threading.py:1010")


def test_it_hands_the_trace_timeline_its_events(viewer_client: Any, captures: Captures) -> None:
    response = viewer_client.get(page(captures.trace))
    trace = script_data(response, "trace-data")
    assert [thread["tid"] for thread in trace["threads"]] == [101, 202]
    assert len(trace["events"]) == 24 and trace["truncated"] is False
    assert trace["events"][0] == [0, "B", 0, None, "outer"]
    html = response.content.decode()
    assert "for Perfetto (ui.perfetto.dev) or chrome://tracing" in html
    assert artefact(captures.trace, "chrometrace") in html


def test_it_passes_at_most_the_first_events_of_a_long_trace(viewer_client: Any) -> None:
    events = chrometrace(events_per_thread=MAX_TRACE_EVENTS // 4)  # twice the bound
    capture = trace_capture(events)
    trace = script_data(viewer_client.get(page(capture)), "trace-data")
    assert len(trace["events"]) == MAX_TRACE_EVENTS
    assert trace["truncated"] is True and trace["total"] == 2 * MAX_TRACE_EVENTS


@pytest.mark.parametrize("status", [CaptureStatus.QUEUED, CaptureStatus.RUNNING])
def test_it_polls_while_a_capture_is_active(viewer_client: Any, status: str) -> None:
    capture = ProfileCapture.objects.create(kind=CaptureKind.CPU, pid=4242, status=status)
    html = viewer_client.get(page(capture)).content.decode()
    status_url = reverse("profiling:status_json", args=[capture.pk])
    assert f'data-status-url="{status_url}"' in html and "profiling/capture.js" in html
    state = viewer_client.get(status_url).json()
    assert state == {"id": capture.pk, "status": status, "active": True, "error": ""}


def test_it_shows_why_a_capture_failed(viewer_client: Any) -> None:
    capture = ProfileCapture.objects.create(
        kind=CaptureKind.CPU,
        pid=4242,
        status=CaptureStatus.ERROR,
        error="process 4242 does not exist",
    )
    html = viewer_client.get(page(capture)).content.decode()
    assert "process 4242 does not exist" in html and "capture.js" not in html
    state = viewer_client.get(reverse("profiling:status_json", args=[capture.pk])).json()
    assert state["active"] is False and state["error"] == "process 4242 does not exist"


def test_it_answers_404_for_a_missing_capture(viewer_client: Any) -> None:
    assert viewer_client.get(reverse("profiling:detail", args=[999])).status_code == 404
    assert viewer_client.get(reverse("profiling:status_json", args=[999])).status_code == 404


def test_it_downloads_a_listed_artefact_as_an_attachment(
    viewer_client: Any, captures: Captures
) -> None:
    response = viewer_client.get(artefact(captures.cpu, "collapsed"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="capture-{captures.cpu.pk}-profile.collapsed.txt"'
    )
    body = b"".join(response.streaming_content).decode()
    assert "MainThread;main (app.py:1);handle (app.py:10);work_hot (app.py:20) 6" in body


@pytest.mark.parametrize(
    "name", ["threads", "..%2F..%2Fsettings.py", "../speedscope", "profile.speedscope.json"]
)
def test_it_downloads_nothing_it_does_not_list(
    viewer_client: Any, captures: Captures, name: str
) -> None:
    url = f"/profiles/{captures.cpu.pk}/artefacts/{name}"
    assert viewer_client.get(url).status_code == 404


def test_it_downloads_no_listed_name_whose_path_escapes_the_directory(
    viewer_client: Any, captures: Captures
) -> None:
    captures.cpu.artefacts["escape"] = "../../../../etc/hostname"
    captures.cpu.save()
    assert viewer_client.get(artefact(captures.cpu, "escape")).status_code == 404


@pytest.mark.parametrize(
    ("kind", "queries"),
    # session, user, the user's permissions (own and groups'), capture (with target) and,
    # for CPU and memory, its rows
    [("cpu", 6), ("memory", 6), ("threads", 5), ("trace", 5)],
)
def test_it_reads_a_capture_page_in_a_fixed_number_of_queries(
    viewer_client: Any,
    captures: Captures,
    django_assert_num_queries: Any,
    kind: str,
    queries: int,
) -> None:
    with django_assert_num_queries(queries):
        response = viewer_client.get(page(getattr(captures, kind)))
    assert response.status_code == 200


def many_functions_capture(count: int) -> ProfileCapture:
    capture = cpu_capture()
    FunctionStat.objects.filter(capture=capture).delete()
    FunctionStat.objects.bulk_create(
        FunctionStat(
            capture=capture, function=f"step_{i:03d}", file="app.py", line=i,
            self_samples=count - i, total_samples=count - i,
            self_pct=(count - i) / 10, total_pct=(count - i) / 10,
        )
        for i in range(count)
    )  # fmt: skip
    return capture


def test_a_cpu_capture_lists_its_top_functions_and_all_of_them_on_request(
    viewer_client: Any, django_assert_num_queries: Any
) -> None:
    capture = many_functions_capture(FUNCTIONS_SHOWN)
    html = viewer_client.get(page(capture)).content.decode()
    assert html.count("<code>step_") == FUNCTIONS_TOP == 20
    assert "<code>step_019</code>" in html and "<code>step_020</code>" not in html
    assert f"The top 20 of {FUNCTIONS_SHOWN} functions." in html
    assert 'href="?all=1#top-functions" id="show-all-functions"' in html
    # session, user, permissions, capture, its functions: the same with every row shown
    with django_assert_num_queries(6):
        html = viewer_client.get(page(capture), {"all": "1"}).content.decode()
    assert html.count("<code>step_") == FUNCTIONS_SHOWN
    assert 'id="show-top-functions"' in html and 'id="show-all-functions"' not in html


def test_a_short_list_of_functions_has_no_show_all_link(
    viewer_client: Any, captures: Captures
) -> None:
    html = viewer_client.get(page(captures.cpu)).content.decode()
    assert 'id="functions-shown"' not in html
