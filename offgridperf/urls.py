from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from loadtests import views as loadtest_views
from offgridperf import access, metrics_views, views
from offgridperf.cache import views as cache_views

admin.site.site_header = "offgridperf administration"
admin.site.site_title = "offgridperf"
admin.site.index_title = "Load tests, profiles and queries"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_views.metrics, name="metrics"),
    # Browsers and tools ask for /favicon.ico whatever the page links; the static name is
    # hashed in production, so it is looked up per request, and the redirect is not permanent.
    path(
        "favicon.ico",
        login_not_required(
            RedirectView.as_view(url=lazy(static, str)("offgridperf/favicon.ico"), permanent=False)
        ),
        name="favicon",
    ),
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
