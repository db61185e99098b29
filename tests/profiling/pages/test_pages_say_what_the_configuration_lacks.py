"""A profiler feature the configuration cannot give is never silently missing: its page says,
in one line, what is missing and how to get it (the default, `make run` with no environment,
has no REDIS_URL, so no agent can publish GC and tracemalloc figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse

from profiling import availability, preflight
from tests.profiling.pages.conftest import Captures

pytestmark = pytest.mark.django_db

NO_REDIS = "GC and tracemalloc figures need the in-process agent, which publishes through Redis"


def without_agent_figures(captures: Captures, **extra: Any) -> str:
    summary = {k: v for k, v in captures.memory.summary.items() if k not in ("tracemalloc", "gc")}
    captures.memory.summary = summary | extra
    captures.memory.save()
    return reverse("profiling:detail", args=[captures.memory.pk])


@override_settings(REDIS_URL="", PROFILING_AGENT=True)
def test_a_memory_capture_without_redis_says_gc_and_tracemalloc_need_redis(
    viewer_client: Any, captures: Captures
) -> None:
    html = viewer_client.get(without_agent_figures(captures)).content.decode()
    assert 'id="agent-missing"' in html
    assert f"{NO_REDIS}: set REDIS_URL, then restart the target." in html


@override_settings(REDIS_URL="", PROFILING_AGENT=False)
def test_it_names_the_agent_setting_too_when_that_is_off(
    viewer_client: Any, captures: Captures
) -> None:
    html = viewer_client.get(without_agent_figures(captures)).content.decode()
    assert "set REDIS_URL and PROFILING_AGENT=1, then restart the target" in html


def test_with_redis_it_says_the_process_ran_no_agent(
    viewer_client: Any, captures: Captures, settings: Any
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    html = viewer_client.get(without_agent_figures(captures)).content.decode()
    assert "process 4242 ran none: start it with PROFILING_AGENT=1" in html


@override_settings(REDIS_URL="")
def test_what_the_capture_recorded_wins_over_todays_configuration(
    viewer_client: Any, captures: Captures
) -> None:
    url = without_agent_figures(captures, agent_missing="process 4242 ran no agent then")
    html = viewer_client.get(url).content.decode()
    assert "process 4242 ran no agent then" in html and NO_REDIS not in html


@override_settings(REDIS_URL="")
def test_a_capture_with_agent_figures_has_no_such_line(
    viewer_client: Any, captures: Captures
) -> None:
    html = viewer_client.get(reverse("profiling:detail", args=[captures.memory.pk])).content
    assert b'id="agent-missing"' not in html


@override_settings(REDIS_URL="", PROFILING_AGENT=True)
def test_the_captures_page_lists_what_the_configuration_lacks(viewer_client: Any) -> None:
    html = viewer_client.get(reverse("profiling:index")).content.decode()
    assert 'id="missing-features"' in html
    assert f"<li>{NO_REDIS}: set REDIS_URL, then restart the target.</li>" in html


@override_settings(PROFILING_PYSPY="/nonexistent/py-spy")
def test_it_says_when_the_configured_py_spy_is_not_there(viewer_client: Any) -> None:
    html = viewer_client.get(reverse("profiling:index")).content.decode()
    assert "CPU, thread and trace captures need py-spy, and PROFILING_PYSPY" in html


def test_it_says_nothing_of_what_the_configuration_has(settings: Any) -> None:
    settings.REDIS_URL, settings.PROFILING_PYSPY = "redis://127.0.0.1:6379/15", ""
    assert availability.agent_missing() is None
    assert availability.pyspy_missing() is None  # the py-spy installed beside this Python


def test_it_says_when_this_machine_refuses_ptrace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = tmp_path / "ptrace_scope"
    scope.write_text("3\n")
    monkeypatch.setattr(preflight, "YAMA_SCOPE", scope)
    line = availability.ptrace_missing()
    assert line is not None
    assert line.startswith(
        "CPU, thread, trace and allocation captures need ptrace: ptrace is disabled"
    )
