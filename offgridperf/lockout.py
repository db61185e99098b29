"""The page a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE), on the login page's
layout: 429 Too Many Requests, with Retry-After and a message that says what is locked and
for how long, for the dashboard's and the admin's login alike."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_client_username
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    # Each try while locked restarts the cool-off, so the wait is always the whole of it.
    minutes = settings.AXES_COOLOFF_MINUTES
    context = {
        "username": get_client_username(request, credentials) or "",
        "minutes": minutes,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
