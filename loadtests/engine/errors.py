"""Error classes: stable strings that the Django side stores and charts."""

from __future__ import annotations

import errno
import socket
import ssl

TIMEOUT = "timeout"
CONNECT_REFUSED = "connect_refused"
CONNECT_ERROR = "connect_error"
RESET = "reset"
TLS = "tls"
PROTOCOL = "protocol"
CHECK_FAILED = "check_failed"
DROPPED = "dropped"
POLL_EXHAUSTED = "poll_exhausted"  # flow mode: a polled step ran out of attempts
STATUS_PREFIX = "status_"

ERROR_CLASSES = (
    TIMEOUT, CONNECT_REFUSED, CONNECT_ERROR, RESET, TLS, PROTOCOL, CHECK_FAILED, DROPPED,
    POLL_EXHAUSTED,
)  # fmt: skip
SAMPLE_MAX_CHARS = 300


def status_class(status: int) -> str:
    """The class of an unexpected status, e.g. `status_500`."""
    return f"{STATUS_PREFIX}{status}"


def is_error_class(name: str) -> bool:
    if name in ERROR_CLASSES:
        return True
    code = name.removeprefix(STATUS_PREFIX)
    return name.startswith(STATUS_PREFIX) and code.isdigit() and len(code) == 3


def classify_connect_error(exc: BaseException) -> tuple[str, str]:
    """(class, message) for a failure to open a connection."""
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT_REFUSED, _message("connection refused", exc)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return TLS, _message("TLS handshake failed", exc)
    if isinstance(exc, TimeoutError):
        return TIMEOUT, _message("connect timed out", exc)
    if isinstance(exc, socket.gaierror):
        return CONNECT_ERROR, _message("name resolution failed", exc)
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return CONNECT_REFUSED, _message("connection refused", exc)
    return CONNECT_ERROR, _message("connect failed", exc)


def classify_lost(exc: BaseException | None) -> tuple[str, str]:
    """(class, message) for a connection that went away while a request was in flight."""
    if exc is None:
        return RESET, "the server closed the connection before a complete response"
    if isinstance(exc, ssl.SSLError):
        return TLS, _message("TLS error", exc)
    return RESET, _message("connection lost", exc)


def _message(prefix: str, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{prefix}: {detail}"[:SAMPLE_MAX_CHARS]


def truncate(message: str) -> str:
    return message[:SAMPLE_MAX_CHARS]
