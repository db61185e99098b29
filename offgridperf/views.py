from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from offgridperf.health import check_all


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return health_report()


# While the database is down, offgridperf.outage answers with the report itself.
healthz.reports_health = True  # type: ignore[attr-defined]


def health_report() -> JsonResponse:
    probes = check_all()
    down = [name for name, probe in probes.items() if not probe.ok]
    body = {
        "status": "ok" if not down else "down",
        "down": down,
        "checks": {name: probe.to_dict() for name, probe in probes.items()},
    }
    response = JsonResponse(body, status=503 if down else 200)
    response["Cache-Control"] = "no-cache, no-store, must-revalidate, max-age=0"
    return response
