from __future__ import annotations

from django.urls import path

from loadtests import api, views
from offgridperf import access

app_name = "loadtests"
urlpatterns = [
    *access.guard(
        access.VIEW_DEFINITIONS,
        [
            path("definitions/<int:definition_id>/", views.definition_detail, name="definition"),
            path(
                "definitions/<int:definition_id>/document.json",
                views.definition_document,
                name="definition_document",
            ),
            path(
                "definitions/<int:definition_id>/run/",
                views.definition_run,
                name="definition_run",
            ),
            path(
                "definitions/<int:definition_id>/schedule/",
                views.definition_schedule,
                name="definition_schedule",
            ),
            path(
                "definitions/<int:definition_id>/baseline/",
                views.definition_baseline,
                name="definition_baseline",
            ),
        ],
    ),
    *access.guard(
        access.VIEW_RUNS,
        [
            # Before runs/<id>/ so that "compare" is never read as a run id.
            path("runs/compare/", views.compare, name="compare"),
            path("runs/running.json", views.running_json, name="running_json"),
            path("runs/<int:run_id>/", views.run_detail, name="run"),
            path("runs/<int:run_id>/live/", views.run_live, name="run_live"),
            path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
            path("runs/<int:run_id>/keep/", views.run_keep, name="run_keep"),
            path(
                "runs/<int:run_id>/summary.json",
                views.run_summary_json,
                name="run_summary_json",
            ),
            path(
                "runs/<int:run_id>/intervals.csv",
                views.run_intervals_csv,
                name="run_intervals_csv",
            ),
            path(
                "runs/<int:run_id>/latency.hlog",
                views.run_histogram_log,
                name="run_histogram_log",
            ),
            path("runs/<int:run_id>/report.html", views.run_report, name="run_report"),
            path(
                "alerts/<int:alert_id>/acknowledge/",
                views.alert_acknowledge,
                name="alert_acknowledge",
            ),
        ],
    ),
    # The HTTP API (loadtests/api.py) authenticates tokens itself, then checks the same
    # view permissions (a token's user is not known yet here).
    path("api/v1/runs/", api.runs, name="api_runs"),
    path("api/v1/runs/<int:run_id>/", api.run_detail, name="api_run"),
    path("api/v1/runs/<int:run_id>/cancel/", api.run_cancel, name="api_run_cancel"),
    *(
        path(
            f"api/v1/runs/<int:run_id>/{name}",
            api.run_report,
            {"kind": kind},
            name=f"api_run_{kind}",
        )
        for name, kind in api.REPORT_PATHS.items()
    ),
    path("api/v1/definitions/<str:name>/", api.definition, name="api_definition"),
]
