from __future__ import annotations

from django.urls import path

from offgridperf import access
from queryopt import views

app_name = "queryopt"
urlpatterns = access.guard(
    access.VIEW_QUERIES,
    [
        path("", views.index, name="index"),
        path("indexes/", views.indexes, name="indexes"),
        path("indexes/<int:target_id>/refresh/", views.refresh_indexes, name="refresh_indexes"),
        path("pool/", views.pool, name="pool"),
        path("<int:shape_id>/", views.detail, name="detail"),
        path("<int:shape_id>/explain/", views.explain_now, name="explain"),
        path(
            "runs/<int:run_id>/statements/<slug:fingerprint>/",
            views.run_statement,
            name="run_statement",
        ),
    ],
)
