"""/metrics: the product's Prometheus families (offgridperf.metrics), for allowed scrapers.

Its own module: offgridperf.views is imported by the demo target's URLs, which must not
reach the tool's apps that the collectors read."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from offgridperf import metrics as product_metrics

REFUSED = (
    "403: /metrics answers METRICS_ALLOWED_IPS, or a request with "
    "'Authorization: Bearer' and METRICS_TOKEN.\n"
)


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(REFUSED, status=403, content_type="text/plain; charset=utf-8")
    body = generate_latest(product_metrics.registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant-time, so the answer's timing tells nothing of the token; bytes, because
    # compare_digest refuses a str that is not ASCII, and a header may hold anything.
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_IPS)
