"""The profiler's pages: the captures list (and "Take a capture"), one capture by its kind, its
artefacts, its status while it runs, and the diff of two CPU captures.

HTTP only: the figures come from profiling.pages (a fixed number of queries per page) and each
page hands its data to one JS file through json_script. Artefacts are read from disk only
through services.artefact_path, so no name leads out of the artefact directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from offgridperf import access
from profiling import availability, diff, monitoring, monitorpage, services, tasks, trend
from profiling.forms import CaptureFilterForm, CaptureForm, DiffForm
from profiling.models import (
    ACKNOWLEDGE_MONITOR_ALERT,
    CAPTURE_ANY_PROCESS,
    CaptureKind,
    CaptureStatus,
    MonitorAlert,
    ProfileCapture,
    ProfileTarget,
)
from profiling.pages import (
    KIND_CONTEXT,
    choice_label,
    cpu_context,
    diff_choices,
    diff_context,
    filtered_captures,
    live_samples,
)

log = logging.getLogger(__name__)

NAV = {"nav": "profiles"}
CAPTURE_ANY_PROCESS = f"profiling.{CAPTURE_ANY_PROCESS}"
ACKNOWLEDGE = f"profiling.{ACKNOWLEDGE_MONITOR_ALERT}"
CAPTURES_PER_PAGE = 50
ACTIVE = (CaptureStatus.QUEUED, CaptureStatus.RUNNING)


# -- captures list and "Take a capture" ---------------------------------------------------


def _list_page(
    request: HttpRequest, take_form: CaptureForm | None = None, status: int = 200
) -> HttpResponse:
    form = CaptureFilterForm(request.GET)
    filters = form.valid_filters()
    page = Paginator(filtered_captures(filters), CAPTURES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    targets = monitorpage.monitored_targets()
    context = {
        "form": form,
        "problems": form.problems(),
        "filters": filters,
        "page": page,
        "captures": page.object_list,
        # One query: the take form's choices and the monitored targets' list.
        "targets": targets,
        "monitored": targets,
        "kinds": CaptureKind.choices,
        "statuses": CaptureStatus.choices,
        "take_form": take_form or CaptureForm(),
        "memory_min_s": trend.MIN_DURATION_S,
        "missing_features": availability.missing(),
        "page_query": urlencode({k: v for k, v in request.GET.items() if k != "page" and v}),
        **NAV,
    }
    return render(request, "profiling/index.html", context, status=status)


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@login_required
@require_POST
@access.requires("profiling.add_profilecapture")
def take(request: HttpRequest) -> HttpResponse:
    """Create a capture from the list's form and queue it; its page shows it running."""
    form = CaptureForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            capture = services.create_capture(
                data["kind"],
                target=data["target"],
                pid=data["pid"],
                duration_s=data["duration_s"],
                rate_hz=data["rate_hz"],
                interval_ms=data["interval_ms"],
                include_children=form.include_children(),
                created_by=request.user.get_username(),
                any_process=request.user.has_perm(CAPTURE_ANY_PROCESS),
            )
        except services.CaptureProblem as exc:
            form.add_problem(str(exc))
        else:
            tasks.queue_capture(capture.pk)
            return redirect("profiling:detail", pk=capture.pk)
    return _list_page(request, take_form=form, status=400)


# -- one capture ----------------------------------------------------------------------------


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    capture = get_object_or_404(ProfileCapture.objects.select_related("target"), pk=pk)
    context: dict[str, Any] = {
        "capture": capture,
        "active": capture.status in ACTIVE,
        "artefact_names": sorted(capture.artefacts or {}),
        # The page compares against these, not against literal strings.
        "CaptureStatus": CaptureStatus,
        "CaptureKind": CaptureKind,
        **NAV,
    }
    if capture.status == CaptureStatus.DONE and capture.kind == CaptureKind.CPU:
        context.update(cpu_context(capture, show_all=request.GET.get("all") == "1"))
    elif capture.status == CaptureStatus.DONE:
        context.update(KIND_CONTEXT[capture.kind](capture))
    return render(request, "profiling/detail.html", context)


@never_cache
@login_required
@require_GET
def status_json(request: HttpRequest, pk: int) -> JsonResponse:
    """A capture's status, polled every second by its page while it is queued or running; a
    running memory capture's samples after ?after= (elapsed seconds) come with it."""
    try:
        after_s = float(request.GET.get("after") or -1)
    except ValueError:
        return JsonResponse({"error": "after: must be a number of seconds"}, status=400)
    capture = (
        ProfileCapture.objects.filter(pk=pk)
        .values("id", "kind", "status", "error", "finished_at")
        .first()
    )
    if capture is None:
        return JsonResponse({"error": f"There is no capture #{pk}."}, status=404)
    state: dict[str, Any] = {
        "id": capture["id"],
        "status": capture["status"],
        "active": capture["status"] in ACTIVE,
        "error": capture["error"],
    }
    if capture["kind"] == CaptureKind.MEMORY and capture["status"] == CaptureStatus.RUNNING:
        state["samples"] = live_samples(pk, after_s)
    return JsonResponse(state)


@login_required
@require_GET
def artefact(request: HttpRequest, pk: int, name: str) -> FileResponse:
    """One artefact of a capture as an attachment; only the names the capture lists."""
    capture = get_object_or_404(ProfileCapture.objects.only("id", "artefacts"), pk=pk)
    path: Path | None = services.artefact_path(capture, name)
    if path is None:
        raise Http404(f"Capture #{pk} has no artefact {name!r} on disk.")
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=f"capture-{capture.pk}-{path.name}"
    )


# -- diff of two CPU captures ---------------------------------------------------------------


def preselected(choices: list[tuple[int, str]], given: str | None, avoid: int | None) -> int | None:
    """The choice to show selected: the one given when it is listed, else the newest that is
    not `avoid` (so that the page opens on the two latest captures)."""
    listed = [value for value, _ in choices]
    if given and given.isdigit() and int(given) in listed:
        return int(given)
    return next((value for value in listed if value != avoid), None)


@login_required
@require_GET
def diff_page(request: HttpRequest) -> HttpResponse:
    captures = diff_choices()
    choices = [(capture.pk, choice_label(capture)) for capture in captures]
    selected_b = preselected(choices, request.GET.get("b"), None)
    context: dict[str, Any] = {
        "choices": choices,
        "selected_b": selected_b,
        "selected_a": preselected(choices, request.GET.get("a"), selected_b),
        "per_thousand": diff.PER_REQUESTS,
        **NAV,
    }
    # Both picks are needed for a diff; one alone (a capture page's link) only preselects it.
    if not request.GET.get("a") or not request.GET.get("b"):
        return render(request, "profiling/diff.html", context)
    form = DiffForm(request.GET, choices)
    if not form.is_valid():
        context["problems"] = form.problems()
        return render(request, "profiling/diff.html", context, status=400)
    by_id = {capture.pk: capture for capture in captures}
    a, b = by_id[form.cleaned_data["a"]], by_id[form.cleaned_data["b"]]
    context.update({"a": a, "b": b, **diff_context(a, b)})
    return render(request, "profiling/diff.html", context)


# -- a monitored target --------------------------------------------------------------------


@login_required
@require_GET
def target_page(request: HttpRequest, pk: int) -> HttpResponse:
    """A target's memory, CPU, threads and files over the chosen window (?window=1h|24h|7d)."""
    target = get_object_or_404(ProfileTarget, pk=pk)
    window = request.GET.get("window") or monitorpage.DEFAULT_WINDOW
    problem = monitorpage.window_problem(window)
    if problem:
        context = {"target": target, "problem": problem, **NAV}
        return render(request, "profiling/target.html", context, status=400)
    context = monitorpage.target_context(target, window, timezone.now())
    context["may_acknowledge"] = request.user.has_perm(ACKNOWLEDGE)
    return render(request, "profiling/target.html", {**context, **NAV})


@login_required
@require_POST
@access.requires(ACKNOWLEDGE)
def acknowledge_monitor_alert(request: HttpRequest, pk: int, alert_id: int) -> HttpResponse:
    """Acknowledge a target's leak alert; the monitor may raise a new one from now on."""
    get_object_or_404(MonitorAlert, pk=alert_id, target_id=pk)
    if monitoring.acknowledge(alert_id, request.user):
        messages.success(request, f"Leak alert #{alert_id} acknowledged.")
    else:
        messages.info(request, f"Leak alert #{alert_id} was already acknowledged.")
    return redirect("profiling:target", pk=pk)
