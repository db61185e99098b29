from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from offgridperf import metrics as product_metrics
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


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "403: /metrics answers METRICS_ALLOWED_IPS, or a request with "
            "'Authorization: Bearer' and METRICS_TOKEN.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(
        generate_latest(product_metrics.registry()), content_type=CONTENT_TYPE_LATEST
    )


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant-time, so the answer's timing tells nothing of the token.
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_IPS)
