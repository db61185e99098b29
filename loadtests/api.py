"""The HTTP API (v1): start, follow and cancel runs, read and write definitions as documents.

Plain Django function views: four endpoints of JSON in and out need neither Django REST
framework nor django-ninja, and the rules already live in one place (the engine's, through
loadtests.documents), which a serializer layer would only restate.

Authentication: `Authorization: Bearer <token>` with a token made in the admin (ApiToken), or
the dashboard's session. Token requests are CSRF-exempt (a browser never adds the header on its
own); session requests keep the CSRF check. Permissions are the dashboard's: the one "Run now"
needs to start a run, the one Cancel needs to cancel, the admin's to change a definition.
Errors: 400 {"errors": {field: [messages]}}, 401/403/404/405 {"error": message}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from loadtests import documents, lifecycle, runjson, runreports, tasks, tokens
from loadtests.engine import jsoninput
from loadtests.engine.config import MAX_DOCUMENT_BYTES, brief
from loadtests.engine.jsoninput import size_message
from loadtests.models import ApiToken, LoadModel, LoadTestDefinition, LoadTestRun, RunTrigger
from loadtests.validators import ascii_number
from offgridperf import access
from offgridperf.throttle import FailureThrottle, client_address

log = logging.getLogger(__name__)

RUN_PERMISSION = "loadtests.add_loadtestrun"  # the dashboard's "Run now"
CANCEL_PERMISSION = "loadtests.change_loadtestrun"  # the dashboard's Cancel
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Overrides a run may take of its definition, and whether each must be a whole number.
OVERRIDES = {"duration_s": True, "rate_rps": False, "users": True}
LAST_USED_EVERY = timedelta(minutes=1)
# A run's reports (loadtests.runreports) by the path under the run: what `--server` fetches.
REPORT_PATHS = {
    "report.html": "html",
    "junit.xml": "junit",
    "summary.md": "markdown",
}  # a follower polls each second: not a write each time

View = Callable[..., HttpResponse]


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def field_errors(problems: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse({"errors": problems}, status=400)


def _unauthorized(message: str) -> JsonResponse:
    response = error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="offgridperf"'
    return response


def token_of(authorization: str) -> ApiToken | None:
    """The live token an Authorization header carries, or None."""
    token = tokens.bearer_token(authorization)
    if token is None:
        return None
    found = (
        ApiToken.objects.select_related("user")
        .filter(prefix=tokens.prefix_of(token), revoked=False, user__is_active=True)
        .first()
    )
    if found is None or not tokens.matches(token, found.token_hash):
        return None
    now = timezone.now()
    if found.last_used_at is None or now - found.last_used_at > LAST_USED_EVERY:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found


def _token_failures() -> FailureThrottle:
    return FailureThrottle(
        "api-token", settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    )


def _authenticate(request: HttpRequest) -> HttpResponse | None:
    """None when the request may go on (request.user set), else the response refusing it."""
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        # Checked before the token, so that a guesser learns nothing more while refused,
        # not even that a guess was right.
        throttle = _token_failures()
        retry_after = throttle.retry_after(request)
        if retry_after is not None:
            response = error(
                429,
                f"Too many invalid API tokens from your address; try again in {retry_after} s.",
            )
            response["Retry-After"] = str(retry_after)
            return response
        token = token_of(authorization)
        if token is None:
            failures = throttle.failure(request)
            log.info(
                "api: invalid API token from %s (%d in the window)",
                client_address(request),
                failures,
            )
            return _unauthorized("The API token is not valid (unknown, revoked or malformed).")
        request.user = token.user
        return None
    if not request.user.is_authenticated:
        return _unauthorized(
            "Send an API token: Authorization: Bearer <token> (tokens are made in the admin)."
        )
    if request.method not in SAFE_METHODS:
        refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {})
        if refused is not None:
            return error(403, "CSRF check failed: a session request needs the CSRF token.")
    return None


def api_view(*methods: str) -> Callable[[View], View]:
    """An API endpoint answering `methods`: authenticated as above, never cached."""

    def decorate(view: View) -> View:
        @login_not_required
        @csrf_exempt
        @never_cache
        @wraps(view)
        def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return response
            return _authenticate(request) or view(request, *args, **kwargs)

        return endpoint

    return decorate


def _denied(request: HttpRequest, permission: str) -> HttpResponse | None:
    if request.user.has_perm(permission):
        return None
    return error(403, f"You need the permission {permission}.")


def _body(request: HttpRequest) -> tuple[Any, HttpResponse | None]:
    """The request's JSON object, read by the documents' one parser (jsoninput), or the 400
    naming the field and the rule. A body over the size limit is refused before it is read."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isascii() and length.isdigit() and int(length) > MAX_DOCUMENT_BYTES:
        return None, field_errors({"body": [size_message(int(length), MAX_DOCUMENT_BYTES)]})
    try:
        body = jsoninput.parse(request.body or b"null", root="body")
    except RequestDataTooBig:  # no Content-Length: Django stopped reading at its own limit
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return None, field_errors({"body": [f"The body is over {limit} bytes; at most "
                                            f"{MAX_DOCUMENT_BYTES} are accepted "
                                            "(MAX_DOCUMENT_BYTES)."]})  # fmt: skip
    except jsoninput.JsonInputInvalid as exc:
        problems: dict[str, list[str]] = {}
        for name, message in exc.problems:
            problems.setdefault(name, []).append(message)
        return None, field_errors(problems)
    if not isinstance(body, dict):
        return None, field_errors({"body": ["Send a JSON object."]})
    return body, None


def _run_response(request: HttpRequest, run: LoadTestRun, status: int = 200) -> JsonResponse:
    document = runjson.run_json(run, base_url=request.build_absolute_uri("/"))
    response = JsonResponse(document, status=status)
    if status == 201:
        response["Location"] = document["url"]
    return response


# -- runs --------------------------------------------------------------------------------


def find_definition(key: Any) -> LoadTestDefinition | None:
    """A definition by name, or by id (a number, or digits as text)."""
    if isinstance(key, bool) or not isinstance(key, str | int):
        return None
    found = LoadTestDefinition.objects.filter(name=str(key)).first()
    number = key if isinstance(key, int) else ascii_number(key)
    if found is None and number is not None:
        found = LoadTestDefinition.objects.filter(pk=number).first()
    return found


def override_problems(body: dict[str, Any], definition: LoadTestDefinition) -> dict[str, list[str]]:
    """What is wrong with a start request's overrides before the engine's limits apply."""
    problems: dict[str, list[str]] = {}
    for name, value in body.items():
        if name == "definition":
            continue
        if name not in OVERRIDES:
            problems[name] = ["Unknown field: give definition, and optionally duration_s, "
                              "rate_rps or users."]  # fmt: skip
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems[name] = ["Give a number."]
        elif OVERRIDES[name] and value != int(value):
            problems[name] = ["Give a whole number."]
    model_field = "rate_rps" if definition.load_model == LoadModel.OPEN else "users"
    for name in ("rate_rps", "users"):
        if name not in body or name in problems:
            continue
        if name != model_field:
            problems[name] = [f"This definition uses the {definition.load_model} model: "
                              f"override {model_field} instead."]  # fmt: skip
        elif definition.stages.exists():
            problems[name] = ["This definition's stages set the load; it has no single level."]
    return problems


@api_view("POST")
def runs(request: HttpRequest) -> HttpResponse:
    """Start a run: {"definition": NAME_OR_ID, "duration_s"?, "rate_rps"?, "users"?} -> 201."""
    refused = _denied(request, RUN_PERMISSION)
    body, bad = _body(request)
    if refused or bad:
        return refused or bad
    if "definition" not in body:
        return field_errors({"definition": ["Give a definition's name or id."]})
    definition = find_definition(body["definition"])
    if definition is None:
        key = body["definition"]
        return field_errors(
            {"definition": [f"There is no definition named or numbered {brief(repr(key))}."]}
        )
    problems = override_problems(body, definition)
    if problems:
        return field_errors(problems)
    overrides = {name: body[name] for name in OVERRIDES if name in body}
    try:
        run = tasks.queue_run(
            definition, trigger=RunTrigger.API, user=request.user, overrides=overrides
        )
    except documents.RunRefused as exc:
        return field_errors(exc.message_dict)
    return _run_response(request, run, status=201)


@api_view("GET")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    refused = _denied(request, access.VIEW_RUNS)
    if refused:
        return refused
    run = LoadTestRun.objects.filter(pk=run_id).first()
    if run is None:
        return error(404, f"There is no run #{run_id}.")
    return _run_response(request, run)


@api_view("GET")
def run_report(request: HttpRequest, run_id: int, kind: str) -> HttpResponse:
    """One of the run's reports as a file: the HTML report, JUnit XML or the Markdown summary.
    Other apps' panels in the HTML follow the token user's permissions."""
    refused = _denied(request, access.VIEW_RUNS)
    if refused:
        return refused
    run = LoadTestRun.objects.select_related("definition").filter(pk=run_id).first()
    if run is None:
        return error(404, f"There is no run #{run_id}.")
    base_url = request.build_absolute_uri("/")
    body = runreports.render(kind, run, user=request.user, base_url=base_url)
    content_type, filename = runreports.FORMATS[kind]
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename.format(id=run.pk)}"'
    return response


@api_view("POST")
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    refused = _denied(request, CANCEL_PERMISSION)
    if refused:
        return refused
    run = LoadTestRun.objects.filter(pk=run_id).first()
    if run is None:
        return error(404, f"There is no run #{run_id}.")
    if not lifecycle.request_cancel(run):
        run.refresh_from_db()
        return error(409, f"Run #{run_id} has already ended ({run.status}).")
    run.refresh_from_db()
    return _run_response(request, run)


# -- definitions ---------------------------------------------------------------------------


@api_view("GET", "PUT")
def definition(request: HttpRequest, name: str) -> HttpResponse:
    """GET: the definition's document (secrets as `${NAME}` placeholders). PUT: create or
    update the definition from a document, validated and atomic."""
    found = LoadTestDefinition.objects.filter(name=name).first()
    if request.method == "GET":
        refused = _denied(request, access.VIEW_DEFINITIONS)
        if refused:
            return refused
        if found is None:
            return error(404, f"There is no definition named {name!r}.")
        return JsonResponse(documents.document_of(found))
    refused = _denied(request, f"loadtests.{'change' if found else 'add'}_loadtestdefinition")
    document, bad = _body(request)
    if refused or bad:
        return refused or bad
    if document.setdefault("name", name) != name:
        named = brief(repr(document["name"]))
        return field_errors({"name": [f"The document is named {named}, the URL "
                                      f"{brief(repr(name))}: rename in the admin."]})  # fmt: skip
    try:
        # Placeholders are not read from the server's environment: that would hand its
        # variables to whoever may write a definition.
        change = documents.apply_document(document, found, environ={})
    except documents.DocumentInvalid as exc:
        return field_errors(exc.message_dict)
    saved = LoadTestDefinition.objects.get(name=name)
    payload = {
        "action": change.action,
        "fields": change.fields,
        "document": documents.document_of(saved),
    }
    return JsonResponse(payload, status=201 if change.action == "created" else 200)
