from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from loadtests import views as loadtest_views
from offgridperf import access, cache_views, views

admin.site.site_header = "offgridperf administration"
admin.site.site_title = "offgridperf"
admin.site.index_title = "Load tests, profiles and queries"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("profiles/", include("profiling.urls")),
    path("queries/", include("queryopt.urls")),
    *access.guard(
        access.VIEW_CACHE,
        [
            path("cache/", cache_views.overview, name="cache"),
            path("cache/metrics/reset/", cache_views.reset_metrics, name="cache-reset-metrics"),
            path("cache/<str:name>/invalidate/", cache_views.invalidate, name="cache-invalidate"),
        ],
    ),
    path("", access.overview(loadtest_views.overview), name="home"),
    path("", include("loadtests.urls")),
]

# A refused permission names itself and whom to ask (offgridperf/no_access.html).
handler403 = access.permission_denied

if settings.ENABLE_DEBUG_TOOLBAR:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
