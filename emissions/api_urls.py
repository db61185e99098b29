"""Root URL conf of the target process (OFFGRIDPERF_ROLE=target): the emissions API only."""

from __future__ import annotations

from django.urls import include, path

from offgridperf import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("api/", include("emissions.urls")),
]

handler404 = "emissions.views.not_found"
