from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import urlencode
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from loadtests import (
    alerts,
    documents,
    lifecycle,
    pages,
    reports,
    runreports,
    schedules,
    secrets,
    shards,
    tasks,
)
from loadtests.forms import BaselineForm, CompareForm, RunFilterForm, ScheduleForm
from loadtests.models import (
    ACTIVE_STATUSES,
    LoadTestDefinition,
    LoadTestRun,
    RunStatus,
    RunTrigger,
)
from loadtests.validators import ascii_number
from offgridperf import access, storage
from offgridperf.panels import compare_panels, run_panels

NAV = {"nav": "loadtests"}


def _not_found(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "loadtests/not_found.html", {"message": message, **NAV}, status=404)


def _run_or_none(run_id: int, queryset: Any = None) -> LoadTestRun | None:
    return (queryset if queryset is not None else LoadTestRun.objects).filter(pk=run_id).first()


def _missing_run(request: HttpRequest, run_id: int) -> HttpResponse:
    return _not_found(request, f"There is no run #{run_id}; it may have been deleted.")


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    form = RunFilterForm(request.GET)
    filters = form.valid_filters()
    # First, and the one source for every run it holds: the recent-runs rows show these
    # objects, so both panels agree even if a run ends between the two reads.
    running = pages.running_now()
    page = pages.run_page(pages.filtered_runs(filters), request.GET.get("page"))
    definitions = pages.definitions_with_trends()
    context = {
        "form": form,
        "problems": form.problems(),
        "filters": filters,
        "page": page,
        "runs": pages.with_running(page.object_list, running),
        "definitions": definitions,
        "definition_names": {d.pk: d.name for d in definitions},
        "tags": sorted({tag.name for d in definitions for tag in d.tags.all()}),
        "running": running,
        "page_query": urlencode({k: v for k, v in request.GET.items() if k != "page" and v}),
        "trends": {d.pk: d.trend for d in definitions},
        "alerts": alerts.open_alerts(),
        # The live panel's script speaks the statuses the server does (one constants object).
        "run_statuses": {status.name: status.value for status in RunStatus},
        "storage": storage.measure(),
        "retention": storage.retention_text(),
        **NAV,
    }
    return render(request, "loadtests/overview.html", context, status=400 if form.errors else 200)


@require_POST
@access.requires("loadtests.change_alert")
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    if alerts.acknowledge(alert_id, request.user):
        messages.success(request, f"Alert #{alert_id} acknowledged.")
    else:
        messages.info(request, f"Alert #{alert_id} was already acknowledged (or is gone).")
    return redirect("home")


@never_cache
@require_GET
def running_json(request: HttpRequest) -> JsonResponse:
    """The overview's "running now" panel, polled every second while a run is shown."""
    return JsonResponse({"runs": [pages.running_state(run) for run in pages.running_now()]})


@require_GET
def definition_detail(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = (
        LoadTestDefinition.objects.prefetch_related("steps", "stages", "tags")
        .filter(pk=definition_id)
        .first()
    )
    if definition is None:
        return _not_found(request, f"There is no load-test definition #{definition_id}.")
    return _definition_page(request, definition, ScheduleForm(instance=definition))


def _definition_page(
    request: HttpRequest,
    definition: LoadTestDefinition,
    schedule_form: ScheduleForm,
    status: int = 200,
) -> HttpResponse:
    runs = pages.definition_history(definition)
    # Everything the page prints of the definition's own text comes from this masked copy.
    frozen = documents.freeze_definition(definition)
    shown, values = secrets.masked_config(frozen), secrets.secret_values(frozen)
    scheduled_runs = schedules.scheduled_runs(definition)
    for run in scheduled_runs:
        run.shown_reason = secrets.redact(run.status_reason or "", values)
    context = {
        "definition": definition,
        "shown": shown,
        "steps": pages.shown_steps(definition, shown),
        "runs": runs[:25],
        "baseline": pages.baseline_of(definition),
        "baseline_choices": [
            run for run in runs if run.status not in ACTIVE_STATUSES and run.finished_at
        ][:50],
        "history": pages.history_chart(runs, definition),
        "schedule_form": schedule_form,
        "next_times": schedules.next_times(definition),
        "scheduled_runs": scheduled_runs,
        **NAV,
    }
    return render(request, "loadtests/definition.html", context, status=status)


@require_POST
@access.requires("loadtests.change_loadtestdefinition")
def definition_schedule(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
    form = ScheduleForm(request.POST, instance=definition)
    if not form.is_valid():
        # The form is shown again with what was typed; nothing is stored.
        stored = LoadTestDefinition.objects.get(pk=definition_id)
        return _definition_page(request, stored, form, status=400)
    with transaction.atomic():
        form.save()  # post_save syncs the beat entry (loadtests/schedules.py)
    messages.success(request, "Schedule saved.")
    return redirect(definition)


@require_GET
def definition_document(request: HttpRequest, definition_id: int) -> HttpResponse:
    """The definition as a load-test document, for `loadtest import` elsewhere or for git:
    secret header values and the URL's user and password are `${NAME}` placeholders, never
    the values (secrets.masked_config)."""
    definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
    body = json.dumps(documents.document_of(definition), indent=2, ensure_ascii=False) + "\n"
    return _download(body, "application/json", f"{slugify(definition.name) or 'loadtest'}.json")


@require_POST
@access.requires("loadtests.add_loadtestrun")
def definition_run(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
    try:
        run = tasks.queue_run(definition, trigger=RunTrigger.MANUAL, user=request.user)
    except documents.RunRefused as exc:
        messages.error(request, f"Not started: {documents.problems_text(exc)}")
        return redirect(definition)
    if run.status == RunStatus.ERROR:  # the broker was down: the run page keeps the reason
        messages.error(request, run.status_reason)
    return redirect(run)


@require_POST
@access.requires("loadtests.change_loadtestdefinition")
def definition_baseline(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
    form = BaselineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Baseline not changed: run: give a run id.")
        return redirect(definition)
    run_id = form.cleaned_data["run"]
    run = None
    if run_id is not None:
        run = definition.runs.exclude(status__in=ACTIVE_STATUSES).filter(pk=run_id).first()
        if run is None:
            messages.error(
                request, f"Baseline not changed: run #{run_id} is not a finished run of this test."
            )
            return redirect(definition)
    definition.baseline_run = run
    definition.save(update_fields=["baseline_run", "updated_at"])
    if run is None:
        messages.success(request, "Baseline reset: the last passing run is used.")
    else:
        messages.success(request, f"Run #{run.pk} is now the baseline.")
    return redirect(definition)


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_none(run_id, LoadTestRun.objects.select_related("definition"))
    if run is None:
        return _missing_run(request, run_id)
    waiting = pages.queue_wait(run)  # first: a run past its queue timeout ends here
    summary = (
        pages.live_summary_context(run)
        if run.status == RunStatus.RUNNING
        else pages.summary_context(run)
    )
    context = {
        **summary,
        "waiting": waiting,
        "chart_data": pages.run_chart_data(run, pages.interval_columns(run)),
        # What other apps show of this run (queries, profiles): they register, we only render.
        "panels": run_panels(run, request),
        "shard_table": shards.shard_table(run),
        "clock_offset_warn_ms": shards.offset_warning_ms(),
        "has_baseline": pages.has_baseline(run),
        **NAV,
    }
    return render(request, "loadtests/run.html", context)


@never_cache
@require_GET
def run_live(request: HttpRequest, run_id: int) -> JsonResponse:
    # -1: nothing shown yet (what the page sends before the first second arrives).
    after_text = request.GET.get("after", "-1")
    after = -1 if after_text == "-1" else ascii_number(after_text)
    if after is None:
        return JsonResponse(
            {"error": "after: give the last second already shown as digits, e.g. 12."},
            status=400,
        )
    run = _run_or_none(run_id)
    if run is None:
        return JsonResponse({"error": f"There is no run #{run_id}."}, status=404)
    state = pages.live_state(run, after=after)
    if run.status == RunStatus.RUNNING:
        # Percentiles, errors by class so far: the page fills its summary before the end.
        # Without the request: context processors would add queries to every poll.
        state["live_summary_html"] = render_to_string(
            "loadtests/_run_summary.html", pages.live_summary_context(run)
        )
    if not run.is_active:
        state["summary_html"] = render_to_string(
            "loadtests/_run_summary.html", pages.summary_context(run), request=request
        )
        state["latency"] = pages.histogram_charts(run.latency_histogram)
        state["service"] = pages.histogram_charts(run.service_histogram)
        state["empty_text"] = pages.NO_REQUESTS  # for charts left with nothing to draw
    return JsonResponse(state)


@require_POST
@access.requires("loadtests.change_loadtestrun")
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(LoadTestRun, pk=run_id)
    if lifecycle.request_cancel(run):
        messages.success(request, f"Cancellation of run #{run.pk} requested.")
    else:
        messages.info(request, f"Run #{run.pk} had already ended.")
    return redirect(run)


@require_POST
@access.requires("loadtests.change_loadtestrun")
def run_keep(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(LoadTestRun, pk=run_id)
    choice = request.POST.get("keep", "")
    if choice not in ("0", "1"):
        messages.error(request, "Not changed: keep: give 1 (keep the run) or 0 (let it be pruned).")
        return redirect(run)
    LoadTestRun.objects.filter(pk=run.pk).update(keep=choice == "1")
    if choice == "1":
        messages.success(request, f"Run #{run.pk} is kept: retention never prunes it.")
    else:
        messages.success(request, f"Run #{run.pk} is no longer kept: retention may prune it.")
    return redirect(run)


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET)
    choices = pages.compare_choices()
    context: dict[str, Any] = {
        "form": form,
        "choices": choices,
        "listed": {run.pk for _, runs in choices for run in runs},
        "picked": {name: ascii_number(form.data.get(name, "")) for name in ("a", "b")},
        **NAV,
    }
    if not form.is_valid():
        context["problems"] = form.problems()
        return render(request, "loadtests/compare.html", context, status=400)
    a_id, b_id = form.cleaned_data["a"], form.cleaned_data["b"]
    runs = LoadTestRun.objects.select_related("definition").in_bulk([i for i in (a_id, b_id) if i])
    missing = [f"#{i}" for i in (a_id, b_id) if i and i not in runs]
    if missing:
        context["problems"] = [f"There is no run {' or '.join(missing)}."]
        return render(request, "loadtests/compare.html", context, status=404)
    a, b = runs.get(a_id), runs.get(b_id)
    if a is None or b is None:
        run = a or b
        baseline = (
            pages.baseline_of(run.definition, before=run, full=True).run if run.definition else None
        )
        if baseline is None:
            context["problems"] = [
                f"Run #{run.pk} has no baseline to compare with (no chosen baseline and no earlier "
                "passing run of its test): give both a and b."
            ]
            return render(request, "loadtests/compare.html", context, status=400)
        a, b = baseline, run
        context["defaulted"] = True
        context["picked"] = {"a": a.pk, "b": b.pk}
    context.update({"a": a, "b": b, **pages.comparison(a, b)})
    context["panels"] = compare_panels(a, b, request)
    return render(request, "loadtests/compare.html", context)


def _download(content: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
def run_summary_json(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(LoadTestRun, pk=run_id)
    body = json.dumps(reports.summary_dict(run), indent=2)
    return _download(body, "application/json", f"run-{run.pk}-summary.json")


@require_GET
def run_intervals_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(LoadTestRun, pk=run_id)
    return _download(reports.intervals_csv(run), "text/csv", f"run-{run.pk}-intervals.csv")


@require_GET
def run_histogram_log(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(LoadTestRun, pk=run_id)
    return _download(reports.histogram_log(run), "text/plain", f"run-{run.pk}-latency.hlog")


@require_GET
def run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run as one self-contained HTML file (loadtests.runreports), as `--report` writes it;
    other apps' panels in it follow the user's permissions, as on the run page."""
    run = get_object_or_404(LoadTestRun.objects.select_related("definition"), pk=run_id)
    body = runreports.html_report(run, user=request.user, base_url=request.build_absolute_uri("/"))
    content_type, filename = runreports.FORMATS["html"]
    return _download(body, content_type, filename.format(id=run.pk))
