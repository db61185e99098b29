"""The HTTP API from the other side: what `loadtest run --server URL --token T` uses on a machine
with no database or broker access (a CI runner). The standard library's urllib is enough for
four JSON calls, so the client adds no dependency."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

TIMEOUT_S = 30.0


class ApiError(Exception):
    """The server refused or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(self, server: str, token: str) -> None:
        if urlsplit(server).scheme not in ("http", "https"):
            raise ApiError(f"the server {server!r} must be an http:// or https:// URL")
        self.server = server.rstrip("/")
        self.token = token

    def start_run(self, definition: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", "/api/v1/runs/", {"definition": definition, **(overrides or {})})

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runs/{run_id}/")

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/runs/{run_id}/cancel/", {})

    def get_report(self, run_id: int, name: str) -> str:
        """One of the run's reports as text: `name` is report.html, junit.xml or summary.md."""
        return self._open("GET", f"/api/v1/runs/{run_id}/{name}").decode("utf-8")

    def get_definition(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/definitions/{quote(name, safe='')}/")

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        try:
            return json.loads(self._open(method, path, data) or b"{}")
        except ValueError as exc:
            raise ApiError(f"{method} {self.server}{path}: {exc}") from None

    def _open(self, method: str, path: str, data: bytes | None = None) -> bytes:
        # The scheme was checked in __init__: http or https only.
        request = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path}: {exc.code} {_error_text(exc)}", exc.code) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"{method} {self.server}{path}: {reason}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The server's message: `error`, or one line per bad field from `errors`."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason
    if isinstance(body, dict) and isinstance(body.get("errors"), dict):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in body["errors"].items()
        )
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return exc.reason
