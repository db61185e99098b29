from __future__ import annotations

from django.urls import path

from offgridperf import access
from profiling import views

app_name = "profiling"
urlpatterns = access.guard(
    access.VIEW_PROFILES,
    [
        path("", views.index, name="index"),
        path("take/", views.take, name="take"),
        # Before <int:pk>/ for clarity, though "diff" could never be read as a capture id.
        path("diff/", views.diff_page, name="diff"),
        path("<int:pk>/", views.detail, name="detail"),
        path("<int:pk>/status.json", views.status_json, name="status_json"),
        path("<int:pk>/artefacts/<str:name>", views.artefact, name="artefact"),
        path("targets/<int:pk>/", views.target_page, name="target"),
        path(
            "targets/<int:pk>/alerts/<int:alert_id>/acknowledge/",
            views.acknowledge_monitor_alert,
            name="acknowledge_monitor_alert",
        ),
    ],
)
