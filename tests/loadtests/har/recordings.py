"""HAR files written by hand, as the browsers' devtools write them: what the import tests read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 5, 1, 9, 0, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8001"


def entry(
    method: str,
    path: str,
    *,
    at_s: float = 0.0,
    time_ms: float = 20.0,
    status: int = 200,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    response_headers: list[tuple[str, str]] | None = None,
    text: str = "",
    mime: str = "text/html",
    base: str = BASE,
    **extra: Any,
) -> dict[str, Any]:
    """One entry: a request sent `at_s` seconds into the recording, and its response."""
    request: dict[str, Any] = {
        "method": method,
        "url": base + path,
        "httpVersion": "HTTP/1.1",
        "headers": [{"name": k, "value": v} for k, v in (headers or {}).items()],
    }
    if body is not None:
        content_type = (headers or {}).get("Content-Type", "application/x-www-form-urlencoded")
        request["postData"] = {"mimeType": content_type, "text": body}
    return {
        "startedDateTime": (START + timedelta(seconds=at_s)).isoformat().replace("+00:00", "Z"),
        "time": time_ms,
        "request": request,
        "response": {
            "status": status,
            "headers": [{"name": k, "value": v} for k, v in response_headers or []],
            "content": {"mimeType": mime, "text": text},
        },
        **extra,
    }


def har(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": list(entries)}}


def har_bytes(*entries: dict[str, Any]) -> bytes:
    return json.dumps(har(*entries)).encode()
