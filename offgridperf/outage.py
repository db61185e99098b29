"""A lost database answers 503 with a clear message, never a 500 or a hung thread.

Django turns an exception into a 500 response inside each middleware's wrapper, so an
exception raised by the session or auth middleware (a session loaded from a database that is
gone) never reaches an outer middleware as an exception. `got_request_exception` is sent while
the exception is being handled, wherever it was raised: it marks the request, and
DatabaseOutageMiddleware, above them all, replaces that 500 with a 503. Exceptions of the view
itself come through `process_exception`.

A process that has seen its database go away stops asking it for every request: waiting for a
pooled connection costs each request DB_POOL_TIMEOUT seconds and pins a thread. Until a short
probe succeeds again, requests answer 503 at once; one probe runs at most every
RETRY_EVERY_S seconds.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve

from offgridperf import health

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
MESSAGE = (
    "The database is unavailable, so this request cannot be served now; try again in a few seconds."
)
# Retry-After (s): how soon a client may usefully try again.
RETRY_AFTER_S = 5
# While the database is down, requests answer at once and one probe checks it this often.
RETRY_EVERY_S = 1.0
# SQLSTATE classes that mean the connection or the server is gone, not one failing statement:
# 08 connection exceptions, 57P01-57P03 administrator shutdown, crash, cannot connect now.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_FAILURE_ATTRIBUTE = "_offgridperf_database_failure"


def database_failure(exc: BaseException | None) -> BaseException | None:
    """The database error in `exc`'s chain (a session load that failed while another
    exception was being handled still names it as its cause or context), or None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DATABASE_ERRORS):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def is_outage(exc: BaseException) -> bool:
    """Whether the error says the database cannot be reached (rather than that one statement
    failed, such as a statement timeout)."""
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is None:
        # A client-side failure: refused, reset, no connection from the pool in time.
        return True
    return sqlstate.startswith(_OUTAGE_SQLSTATES)


class DatabaseOutage:
    """This process's view of the database: up, or down since when and probed when next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._next_probe = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Whether a request may go on to the database: always while it is up; while it is
        down, only after a probe that found it back."""
        with self._lock:
            if self.down_since is None:
                return True
            now = time.monotonic()
            if self._probing or now < self._next_probe:
                return False
            self._probing = True
        try:
            back = health.database_reachable()
        finally:
            with self._lock:
                self._probing = False
        if back:
            self.recovered()
        else:
            self.failed()
        return back

    def failed(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
                logger.warning("database unavailable: answering 503 until it is back")
            self._next_probe = now + RETRY_EVERY_S

    def recovered(self) -> None:
        with self._lock:
            if self.down_since is not None:
                logger.warning(
                    "database available again after %.1f s", time.monotonic() - self.down_since
                )
            self.down_since = None


outage = DatabaseOutage()


def wants_json(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """The 503 a request gets while the database is gone: JSON on the API, a page otherwise."""
    if _is_health_check(request):
        # The health report names the database (and the state of everything else).
        from offgridperf.views import health_report

        return health_report()
    if wants_json(request):
        response: HttpResponse = JsonResponse({"error": MESSAGE, "down": ["database"]}, status=503)
    else:
        # No request context: its processors would read the session and the user, from the
        # database that is gone.
        html = render_to_string("503.html", {"message": MESSAGE, "retry_after_s": RETRY_AFTER_S})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response


def _is_health_check(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return getattr(match.func, "reports_health", False)


def _note_database_failure(
    sender: object, request: HttpRequest | None = None, **kwargs: object
) -> None:
    failure = database_failure(sys.exc_info()[1])
    if request is not None and failure is not None:
        setattr(request, _FAILURE_ATTRIBUTE, failure)


got_request_exception.connect(_note_database_failure, dispatch_uid="offgridperf-database-outage")


class DatabaseOutageMiddleware:
    """Above the session middleware: see the module's docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if outage.down_since is not None and _is_health_check(request):
            # The report probes the database itself: once is enough for one request.
            return database_unavailable(request)
        if not outage.admit():
            return database_unavailable(request)
        response = self.get_response(request)
        failure = getattr(request, _FAILURE_ATTRIBUTE, None)
        if failure is None:
            return response
        if is_outage(failure):
            outage.failed()
        return database_unavailable(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        failure = database_failure(exception)
        if failure is None:
            return None
        logger.warning("%s %s: %s", request.method, request.path, failure)
        if is_outage(failure):
            outage.failed()
        return database_unavailable(request)
