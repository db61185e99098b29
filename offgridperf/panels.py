"""Panels that tool apps add to the load-test run page, without loadtests importing them.

An app registers a panel once (from its AppConfig.ready()); the run page asks `run_panels(run)`
for the rendered panels, in registration order. The import contract that keeps loadtests free
of queryopt and profiling holds because the dependency points the other way: the apps import
this registry, loadtests only calls it.

    register_run_panel("queries", "Queries", "queryopt/run_panel.html", run_queries)

A panel's context function returns the template's context, or None when it has nothing to
show for this run (e.g. a queued run), which leaves the panel out without rendering it.
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

PanelContext = Callable[[Any], dict[str, Any] | None]


@dataclass(frozen=True)
class RunPanel:
    name: str
    title: str
    template: str
    context: PanelContext


_panels: dict[str, RunPanel] = {}


def register_run_panel(name: str, title: str, template: str, context: PanelContext) -> None:
    """Add (or replace: ready() may run twice in tests) the panel called `name`."""
    _panels[name] = RunPanel(name, title, template, context)


def unregister_run_panel(name: str) -> None:
    _panels.pop(name, None)


def registered_panels() -> list[RunPanel]:
    return list(_panels.values())


def run_panels(run: Any, request: HttpRequest | None = None) -> list[dict[str, Any]]:
    """Each panel with something to show for `run`: {"name", "title", "html"}."""
    shown = []
    for panel in _panels.values():
        html = _render(panel, run, request)
        if html is not None:
            shown.append({"name": panel.name, "title": panel.title, "html": html})
    return shown


def _render(panel: RunPanel, run: Any, request: HttpRequest | None) -> str | None:
    # One app's broken panel must not take the run page, which shows the load test itself, down.
    try:
        context = panel.context(run)
        if context is None:
            return None
        return render_to_string(panel.template, context, request=request)
    except Exception:
        log.exception("run page panel %s failed for run %s", panel.name, getattr(run, "pk", run))
        return format_html(
            '<p class="error">The {} panel could not be drawn; see the log.</p>', panel.title
        )
