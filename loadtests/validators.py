"""Validators for load-test definitions: each error names the field and the rule."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def host_is_allowed(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {h.lower() for h in settings.LOADTEST_ALLOWED_HOSTS}


def validate_target_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Use an http:// or https:// URL with a host.", code="scheme")
    if parts.query or parts.fragment:
        raise ValidationError("The base URL takes no query or fragment; put them in the steps.")
    if not host_is_allowed(url):
        allowed = ", ".join(settings.LOADTEST_ALLOWED_HOSTS)
        raise ValidationError(
            f"Host {parts.hostname!r} is not in LOADTEST_ALLOWED_HOSTS ({allowed}).",
            code="not_allowed",
        )


def validate_step_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValidationError("The path must start with '/'.")
    if any(ch in path for ch in " \r\n\t"):
        raise ValidationError("The path may not contain spaces or line breaks.")


def parse_status_codes(text: str) -> tuple[int, ...]:
    """'200, 201' -> (200, 201); raises ValidationError naming the bad item."""
    codes = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if not item.isdigit() or not 100 <= int(item) <= 599:
            raise ValidationError(f"{item!r} is not an HTTP status code (100-599).")
        codes.append(int(item))
    if not codes:
        raise ValidationError("Give at least one expected status code, e.g. 200.")
    return tuple(sorted(set(codes)))


def validate_status_codes(text: str) -> None:
    parse_status_codes(text)


def validate_headers(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Headers must be a JSON object, e.g. {"Accept": "application/json"}.')
    for name, header_value in value.items():
        if not isinstance(header_value, str) or not name or any(c in name for c in ":\r\n "):
            raise ValidationError(
                f"Header {name!r} must be a name without ':' or spaces and a text value."
            )
        if "\r" in header_value or "\n" in header_value:
            raise ValidationError(f"Header {name!r} may not contain line breaks.")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ValidationError(f"Header {name!r} is set by the load generator itself.")
