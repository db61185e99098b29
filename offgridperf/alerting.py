"""The alert channels every app sends through: email and a webhook POST, with the rules that
keep them safe. Alerts themselves (what is judged, which rows record them, their retries) live
with their app: loadtests.alerts for runs, profiling.monitoring for the monitor's leaks.

Nothing secret goes out: a webhook goes only to a host in ALERT_WEBHOOK_ALLOWED_HOSTS, checked
when the address is saved and again before each POST, never follows a redirect, and is shown
without its credentials or query string.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email

WEBHOOK_TIMEOUT_S = 5
BACKOFF_FIRST_S = 2


class DeliveryError(Exception):
    """A delivery attempt that failed; its text is recorded on the delivery."""


def parse_emails(text: str) -> list[str]:
    """The addresses of a comma- (or newline-) separated list, blanks left out."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def validate_alert_emails(text: str) -> list[str]:
    addresses = parse_emails(text or "")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                f"alert_emails: {address!r} is not an email address; give addresses "
                "separated by commas, e.g. ops@example.com, me@example.com."
            ) from None
    return addresses


def webhook_host_allowed(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    allowed = {name.lower() for name in settings.ALERT_WEBHOOK_ALLOWED_HOSTS}
    return bool(host) and host in allowed


def validate_alert_webhook_url(url: str) -> str:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("alert_webhook_url: must be an http:// or https:// URL with a host.")
    if not webhook_host_allowed(url):
        allowed = ", ".join(settings.ALERT_WEBHOOK_ALLOWED_HOSTS) or "none"
        raise ValidationError(
            f"alert_webhook_url: the host {parts.hostname!r} is not in "
            f"ALERT_WEBHOOK_ALLOWED_HOSTS (allowed: {allowed})."
        )
    return url


def shown_url(url: str) -> str:
    """The webhook URL without user, password or query string (where tokens tend to live)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def backoff_s(attempts: int) -> int:
    """Wait after the attempt numbered `attempts` (1-based): 2, 4, 8, ... s."""
    return BACKOFF_FIRST_S * 2 ** (attempts - 1)


def email(subject: str, body: str, addresses: list[str]) -> None:
    try:
        send_mail(subject, body, None, addresses, fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any backend error is a failed attempt
        raise DeliveryError(f"Email not sent: {exc}") from exc


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead off the allow-list: refuse it (urlopen then raises HTTPError).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_webhook(url: str, body: dict[str, Any]) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError("Not sent: the webhook URL is not http:// or https://.")
    if not webhook_host_allowed(url):
        host = urlsplit(url).hostname
        raise DeliveryError(f"Not sent: the host {host!r} is not in ALERT_WEBHOOK_ALLOWED_HOSTS.")
    # The scheme is checked just above.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "offgridperf-alerts"},
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {shown_url(url)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{shown_url(url)} did not answer: {reason}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status} from {shown_url(url)}")
