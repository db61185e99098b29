"""A lean HTTP/1.1 keep-alive client: asyncio Protocol + httptools, one request at a time.

Requests are serialised to bytes once per step; the hot path writes those bytes, lets
httptools parse the response and calls the load model back. Nothing here allocates per
request except what httptools and the transport do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httptools

from loadtests.engine import errors
from loadtests.engine.config import Step, accepted_statuses, is_visible_ascii, path_problem
from stats.histogram import Histogram

if TYPE_CHECKING:
    from loadtests.engine.pool import Pool

clock = time.perf_counter
USER_AGENT = "offgridperf-engine/1"
MAX_REDIRECTS = 5
# RFC 9110 §9.2.2: safe to send again when a reused connection fails before any answer.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class InvalidRequestTarget(ValueError):
    """A path or redirect location that may not go into a request line as it is."""


class Target:
    """Where requests go: scheme, host, port and the path prefix of the base URL."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"

    def same_origin_path(self, location: str) -> str | None:
        """The path to request for a redirect `location`, or None when it leaves the target.

        Raises InvalidRequestTarget for a location with spaces, controls or non-ASCII
        characters: urlsplit would quietly drop some of them, and send the rest.
        """
        if not is_visible_ascii(location):
            raise InvalidRequestTarget(f"redirect to {location!r}: {path_problem(location)}")
        parts = urlsplit(location)
        if parts.scheme and parts.scheme != self.scheme:
            return None
        if parts.netloc:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if parts.hostname != self.host or port != self.port:
                return None
        path = parts.path or "/"
        if not path.startswith("/"):
            return None
        return path + (f"?{parts.query}" if parts.query else "")


def build_request(
    target: Target, method: str, path: str, headers: dict[str, str], body: str | None
) -> bytes:
    """The complete request bytes, sent as they are on every iteration.

    Raises InvalidRequestTarget for a path that would corrupt the request line.
    """
    problem = path_problem(path) or path_problem(f"{target.prefix}{path}")
    if problem:
        raise InvalidRequestTarget(f"{path!r}: {problem}")
    payload = body.encode("utf-8") if body is not None else b""
    lines = [
        f"{method} {target.prefix}{path} HTTP/1.1",
        f"Host: {target.host_header}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if payload or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class PreparedStep:
    """A step ready for the hot path: request bytes, expectations and its own histogram."""

    __slots__ = (
        "index", "name", "step", "request", "expect", "check", "needs_body", "is_head",
        "latency", "latency_counts", "method", "headers", "idempotent",
    )  # fmt: skip

    def __init__(self, index: int, step: Step, target: Target) -> None:
        self.index = index
        self.name = step.name
        self.step = step
        self.method = step.method
        self.headers = step.headers
        self.request = build_request(target, step.method, step.path, step.headers, step.body)
        self.expect = accepted_statuses(step.expected_statuses)
        self.needs_body = step.needs_body
        self.check: Callable[[bytes], str | None] | None = make_check(step)
        self.is_head = step.method == "HEAD"
        self.idempotent = step.method in IDEMPOTENT_METHODS
        self.latency = Histogram()
        self.latency_counts = self.latency.counts


def make_check(step: Step) -> Callable[[bytes], str | None] | None:
    """A function of the body that returns why the check failed, or None when it passed."""
    checks: list[Callable[[bytes], str | None]] = []
    if step.check_contains is not None:
        needle = step.check_contains.encode("utf-8")
        text = step.check_contains

        def contains(body: bytes) -> str | None:
            return None if needle in body else f"the body does not contain {text!r}"

        checks.append(contains)
    if step.check_json_field is not None:
        path = [part for part in step.check_json_field.split(".") if part]
        expected = step.check_json_value

        def json_field(body: bytes) -> str | None:
            return check_json(body, path, expected)

        checks.append(json_field)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def all_checks(body: bytes) -> str | None:
        for check in checks:
            failure = check(body)
            if failure:
                return failure
        return None

    return all_checks


def check_json(body: bytes, path: list[str], expected: object) -> str | None:
    """Why `body`'s JSON field at `path` does not equal `expected`, or None when it does."""
    dotted = ".".join(path)
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):  # a target's deeply nested answer fails the check
        return f"the body is not JSON (wanted {dotted})"
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return f"JSON field {dotted} is missing"
    if value != expected or type(value) is bool and type(expected) is not bool:
        shown = json.dumps(value)[:80]
        return f"JSON field {dotted} is {shown}, expected {json.dumps(expected)[:80]}"
    return None


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time.

    The load model owns the request: `send` records the step and times on the connection
    itself, so a request needs no object of its own; the model is called back with
    `on_response(conn, status)` or `on_failure(conn, error_class, message)`.
    """

    __slots__ = (
        "pool", "parser", "transport", "step", "user", "intended", "sent_at", "busy",
        "reusable", "received", "body", "location", "hops", "on_response", "on_failure",
        "head_pending", "forgotten", "uses", "on_stale", "idle_since",
    )  # fmt: skip

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.step: PreparedStep | None = None
        self.user: Any = None
        self.intended = 0.0
        self.sent_at = 0.0
        self.busy = False
        self.reusable = True
        self.received = False
        self.body: list[bytes] | None = None
        self.location: bytes | None = None
        self.hops = 0
        self.head_pending = False
        self.forgotten = False
        self.uses = 0
        self.idle_since = 0.0  # when it was last parked idle (flows only)
        self.on_response = pool.model.on_response
        self.on_failure = pool.model.on_failure
        self.on_stale = pool.model.on_stale

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(errors.PROTOCOL, errors.truncate(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        was_busy = self.busy
        self.busy = False
        self.pool.forget(self)
        if not was_busy:
            return
        if exc is None and self.received and not self.parser.should_keep_alive():
            # A response without Content-Length or chunking ends when the server closes.
            self.on_response(self, self.parser.get_status_code())
            return
        step = self.step
        if self.uses > 1 and not self.received and not self.hops and step and step.idempotent:
            # A reused connection closed before any byte of the answer: the server dropped it
            # while idle (its keep-alive timeout) as the request went out. Browsers and HTTP
            # libraries send an idempotent request again on another connection; so do we.
            self.on_stale(self)
            return
        error_class, message = errors.classify_lost(exc)
        self.on_failure(self, error_class, message)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_complete(self) -> None:
        parser = self.parser
        if not parser.should_keep_alive():
            self.reusable = False
        self.busy = False
        self.on_response(self, parser.get_status_code())

    # -- used by the load models ----------------------------------------------------------

    def send(self, step: PreparedStep, intended: float, now: float) -> None:
        self.step = step
        self.intended = intended
        self.sent_at = now
        self.busy = True
        self.received = False
        self.hops = 0
        self.uses += 1
        self.transport.write(step.request)  # type: ignore[union-attr]

    def resend(self, request: bytes) -> None:
        """Send a follow-up request (a redirect) as part of the same logical request."""
        self.busy = True
        self.received = False
        self.hops += 1
        self.transport.write(request)  # type: ignore[union-attr]

    def fail(self, error_class: str, message: str) -> None:
        """Give up on the request in flight (timeout, garbage) and drop the connection."""
        was_busy = self.busy
        self.busy = False
        self.reusable = False
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()
        if was_busy:
            self.on_failure(self, error_class, message)

    def close(self) -> None:
        self.reusable = False
        self.busy = False
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def take_body(self) -> bytes:
        parts = self.body
        self.body = None
        return b"".join(parts) if parts else b""


class FullConnection(Connection):
    """A connection that also keeps bodies (for checks), Location headers (for redirects) and
    knows that a response to HEAD has no body. Only runs that need these pay for the extra
    parser callbacks."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.head_pending:
            # llhttp cannot be told that a HEAD response has no body; finish it here and give
            # the next response a fresh parser.
            self.head_pending = False
            parser = self.parser
            status = parser.get_status_code()
            if not parser.should_keep_alive():
                self.reusable = False
            self.parser = httptools.HttpResponseParser(self)
            self.busy = False
            self.on_response(self, status)

    def on_message_begin(self) -> None:
        self.location = None
        step = self.step
        self.body = [] if step is not None and step.needs_body else None

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 8 and name.lower() == b"location":
            self.location = value

    def on_headers_complete(self) -> None:
        step = self.step
        if step is not None and step.is_head and self.busy:
            self.head_pending = True

    def on_body(self, data: bytes) -> None:
        if self.body is not None:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.head_pending:
            return
        super().on_message_complete()


def connection_class(steps: list[PreparedStep], follow_redirects: bool) -> type[Connection]:
    needs_more = follow_redirects or any(s.needs_body or s.is_head for s in steps)
    return FullConnection if needs_more else Connection
