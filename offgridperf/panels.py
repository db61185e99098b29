"""Panels that tool apps add to the load-test run and compare pages, without loadtests
importing them.

An app registers a panel once (from its AppConfig.ready()); the run page asks `run_panels(run)`
for the rendered panels, in registration order. The import contract that keeps loadtests free
of queryopt and profiling holds because the dependency points the other way: the apps import
this registry, loadtests only calls it.

    register_run_panel("queries", "Queries", "queryopt/run_panel.html", run_queries)

A panel's context function returns the template's context, or None when it has nothing to
show for this run (e.g. a queued run), which leaves the panel out without rendering it.
Compare panels work alike, with a context function of the two runs compared (a, b); report
panels go into a run's self-contained HTML report (loadtests.runreports), which is opened
offline, so their templates hold no links and no scripts. A panel
registered with a `permission` is left out for a user without it (the app's view permission:
a run page must not show another area's data to someone who may not see that area).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html

log = logging.getLogger(__name__)

PanelContext = Callable[..., dict[str, Any] | None]


@dataclass(frozen=True)
class RunPanel:
    name: str
    title: str
    template: str
    context: PanelContext
    permission: str = ""


_panels: dict[str, RunPanel] = {}
_compare_panels: dict[str, RunPanel] = {}
_report_panels: dict[str, RunPanel] = {}


def register_run_panel(
    name: str, title: str, template: str, context: PanelContext, permission: str = ""
) -> None:
    """Add (or replace: ready() may run twice in tests) the panel called `name`."""
    _panels[name] = RunPanel(name, title, template, context, permission)


def unregister_run_panel(name: str) -> None:
    _panels.pop(name, None)


def registered_panels() -> list[RunPanel]:
    return list(_panels.values())


def register_compare_panel(
    name: str, title: str, template: str, context: PanelContext, permission: str = ""
) -> None:
    """Add (or replace) the compare-page panel `name`; `context(a, b)` gets the two runs."""
    _compare_panels[name] = RunPanel(name, title, template, context, permission)


def unregister_compare_panel(name: str) -> None:
    _compare_panels.pop(name, None)


def register_report_panel(
    name: str, title: str, template: str, context: PanelContext, permission: str = ""
) -> None:
    """Add (or replace) the HTML report's panel `name`; `context(run)` gets the run."""
    _report_panels[name] = RunPanel(name, title, template, context, permission)


def unregister_report_panel(name: str) -> None:
    _report_panels.pop(name, None)


def report_panels(run: Any, user: Any = None) -> list[dict[str, Any]]:
    """Each report panel with something to show for `run`, for `user`; None (the CLI, which
    reads the database itself) sees every panel."""
    allowed = [
        panel
        for panel in _report_panels.values()
        if user is None or not panel.permission or user.has_perm(panel.permission)
    ]
    return _rendered(allowed, (run,), None)


def run_panels(run: Any, request: HttpRequest | None = None) -> list[dict[str, Any]]:
    """Each panel with something to show for `run`: {"name", "title", "html"}."""
    return _rendered(_panels.values(), (run,), request)


def compare_panels(a: Any, b: Any, request: HttpRequest | None = None) -> list[dict[str, Any]]:
    """Each compare panel with something to show for runs `a` and `b`."""
    return _rendered(_compare_panels.values(), (a, b), request)


def _rendered(
    panels: Any, runs: tuple[Any, ...], request: HttpRequest | None
) -> list[dict[str, Any]]:
    shown = []
    for panel in panels:
        if request is not None and panel.permission and not request.user.has_perm(panel.permission):
            continue
        html = _render(panel, runs, request)
        if html is not None:
            shown.append({"name": panel.name, "title": panel.title, "html": html})
    return shown


def _render(panel: RunPanel, runs: tuple[Any, ...], request: HttpRequest | None) -> str | None:
    # One app's broken panel must not take the run page, which shows the load test itself, down.
    try:
        context = panel.context(*runs)
        if context is None:
            return None
        return render_to_string(panel.template, context, request=request)
    except Exception:
        ids = ", ".join(str(getattr(run, "pk", run)) for run in runs)
        log.exception("panel %s failed for run(s) %s", panel.name, ids)
        return format_html(
            '<p class="error">The {} panel could not be drawn; see the log.</p>', panel.title
        )
