"""The emissions JSON API (served by the target process; see emissions/api_urls.py).

Reads are open (a demo service bound to loopback); writes need
`Authorization: Bearer <EMISSIONS_API_TOKEN>`. Bad input gets status 400 and
{"errors": {field: message}}.
"""

from __future__ import annotations

import hmac
import io
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from emissions import pages, rows, services, tasks
from emissions.forms import (
    ActivityFilterForm,
    BatchMetaForm,
    BySiteForm,
    PageForm,
    TotalsForm,
    first_errors,
)
from emissions.models import ActivityBatch

View = Callable[..., HttpResponse]
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "text/plain", "application/csv")
READ_PIECE = 1024 * 1024


def error(status: int, errors: dict[str, str]) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


def api_view(*methods: str) -> Callable[[View], View]:
    """Open to anonymous callers, CSRF-free (token-authenticated), methods enforced in JSON."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, {"method": f"use {' or '.join(methods)}"})
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except pages.NotFound as exc:
                return error(404, {"batch": f"no batch {str(exc)!r}"})

        return csrf_exempt(login_not_required(wrapper))

    return decorate


def token_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request carries the API token; the refusal otherwise."""
    token = settings.EMISSIONS_API_TOKEN
    if not token:
        return error(503, {"authorization": "write endpoints are off: set EMISSIONS_API_TOKEN"})
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = error(401, {"authorization": "send the header Authorization: Bearer <token>"})
    response["WWW-Authenticate"] = 'Bearer realm="emissions"'
    return response


# --- reads -------------------------------------------------------------------------------------


@api_view("GET", "POST")
def batches(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return upload(request)
    return JsonResponse(pages.batch_list())


@api_view("GET", "PUT")
def batch(request: HttpRequest, ref: str) -> HttpResponse:
    batch_id = pages.resolve_batch(ref)
    if request.method == "PUT":
        return reupload(request, batch_id)
    return JsonResponse(pages.batch_detail(batch_id))


@api_view("GET")
def batch_activities(request: HttpRequest, ref: str) -> HttpResponse:
    form = PageForm(request.GET)
    if not form.is_valid():
        return error(400, first_errors(form))
    batch_id = pages.resolve_batch(ref)
    data = form.cleaned_data
    return JsonResponse(pages.batch_activities(batch_id, data["page"], data["page_size"]))


@api_view("GET")
def totals(request: HttpRequest) -> HttpResponse:
    form = TotalsForm(request.GET)
    if not form.is_valid():
        return error(400, first_errors(form))
    ref = form.cleaned_data["batch"]
    batch_id = pages.resolve_batch(ref) if ref else None
    return JsonResponse(pages.totals(form.cleaned_data["group_by"], batch_id))


@api_view("GET")
def activities(request: HttpRequest) -> HttpResponse:
    form = ActivityFilterForm(request.GET)
    if not form.is_valid():
        return error(400, first_errors(form))
    return JsonResponse(pages.activity_listing(form.cleaned_data))


@api_view("GET")
def activities_by_site(request: HttpRequest) -> HttpResponse:
    form = BySiteForm(request.GET)
    if not form.is_valid():
        return error(400, first_errors(form))
    data = form.cleaned_data
    return JsonResponse(pages.activities_by_site(data["site"], data["page"], data["page_size"]))


# --- writes ------------------------------------------------------------------------------------


class UploadRefused(Exception):
    def __init__(self, status: int, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.response = error(status, errors)


def upload(request: HttpRequest) -> HttpResponse:
    if refusal := token_refusal(request):
        return refusal
    try:
        meta, parsed = read_upload(request)
    except UploadRefused as refused:
        return refused.response
    form = BatchMetaForm(meta)
    if not form.is_valid():
        return error(400, first_errors(form))
    info = services.BatchInfo(
        organisation=form.cleaned_data["organisation"],
        period=form.cleaned_data["period"],
        reference=form.cleaned_data["reference"] or f"batch-{uuid.uuid4().hex[:12]}",
    )
    created = services.create_batch(info, parsed)
    return JsonResponse(pages.batch_summary(created), status=201)


def reupload(request: HttpRequest, batch_id: int) -> HttpResponse:
    if refusal := token_refusal(request):
        return refusal
    existing = ActivityBatch.objects.filter(pk=batch_id).first()
    if existing is None:
        raise pages.NotFound(batch_id)
    try:
        _, parsed = read_upload(request)
        replaced = services.replace_batch(existing, parsed)
    except UploadRefused as refused:
        return refused.response
    except services.BatchBusy:
        return error(409, {"status": "the batch is being calculated; retry when it is done"})
    return JsonResponse(pages.batch_summary(replaced))


@api_view("POST")
def batch_calculate(request: HttpRequest, ref: str) -> HttpResponse:
    if refusal := token_refusal(request):
        return refusal
    batch_id = pages.resolve_batch(ref)
    existing = ActivityBatch.objects.filter(pk=batch_id).first()
    if existing is None:
        raise pages.NotFound(ref)
    if not existing.row_count:
        return error(409, {"status": "the batch has no rows to calculate"})
    try:
        started = tasks.start_calculation(existing)
    except services.BatchBusy:
        return error(409, {"status": "the batch is already being calculated"})
    except tasks.QueueUnavailable:
        return error(503, {"status": "the task queue is unreachable; nothing was queued, retry"})
    return JsonResponse(
        {"id": started.pk, "status": started.status, "status_url": f"/api/batches/{started.pk}/"},
        status=202,
    )


def read_upload(request: HttpRequest) -> tuple[dict[str, Any], services.Upload]:
    """Metadata and parsed rows of an upload: JSON, CSV, or a multipart `file`."""
    content_type = request.content_type or ""
    limit = settings.EMISSIONS_UPLOAD_MAX_MB * 1024 * 1024
    meta: dict[str, Any] = request.GET.dict()
    _buffer_unsized_body(request, limit)
    try:
        if content_type == "multipart/form-data":
            return _read_multipart(request, meta, limit)
        if content_type in JSON_TYPES:
            data = rows.load_json(_text(_body(request, limit)))
            if isinstance(data, dict):
                meta.update({k: v for k, v in data.items() if k != "activities"})
                data = data.get("activities")
            return meta, rows.parse_json(data)
        if content_type in CSV_TYPES:
            return meta, rows.CsvUpload(_text(_body(request, limit)))
    except rows.UploadFormatError as exc:
        raise UploadRefused(400, {exc.field: exc.message}) from None
    raise UploadRefused(
        415, {"content_type": "use application/json, text/csv or multipart/form-data"}
    )


def _read_multipart(
    request: HttpRequest, meta: dict[str, Any], limit: int
) -> tuple[dict[str, Any], services.Upload]:
    upload_file = request.FILES.get("file")
    if upload_file is None:
        raise UploadRefused(400, {"file": "is required (a CSV or JSON file)"})
    if upload_file.size > limit:
        raise UploadRefused(413, {"file": _too_large()})
    meta.update(request.POST.dict())
    text = _text(upload_file.read())
    is_json = upload_file.name.lower().endswith(".json") or upload_file.content_type in JSON_TYPES
    if is_json:
        return meta, rows.parse_json(rows.load_json(text, "file"))
    return meta, rows.CsvUpload(text)


def _too_large() -> str:
    megabytes = settings.EMISSIONS_UPLOAD_MAX_MB
    return f"is larger than the limit of {megabytes} MB (EMISSIONS_UPLOAD_MAX_MB)"


def _body(request: HttpRequest, limit: int) -> bytes:
    # request.read() rather than request.body: uploads may exceed DATA_UPLOAD_MAX_MEMORY_SIZE.
    body = request.read(limit + 1)
    if len(body) > limit:
        raise UploadRefused(413, {"body": _too_large()})
    return body


def _buffer_unsized_body(request: HttpRequest, limit: int) -> None:
    """Give a chunked body (no Content-Length) to Django as if it had been sized.

    Django reads a body without CONTENT_LENGTH as empty ("file is empty"), while gunicorn
    hands the decoded chunks to WSGI as wsgi.input. Read them here, up to the limit, and
    put them back as a sized stream so that every reader below (multipart too) sees them.
    """
    if request.META.get("CONTENT_LENGTH") or "wsgi.input" not in request.META:
        return
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if "chunked" not in encoding:
        return
    stream, pieces, size = request.META["wsgi.input"], [], 0
    while size <= limit:
        piece = stream.read(min(READ_PIECE, limit + 1 - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    if size > limit:
        raise UploadRefused(413, {"body": _too_large()})
    body = b"".join(pieces)
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[attr-defined]


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadRefused(400, {"body": "is not UTF-8 text"}) from None


@login_not_required
def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error(404, {"path": f"no endpoint at {request.path}"})


ENDPOINTS = {
    "upload": "POST /api/batches/ (JSON list or object, text/csv, or multipart file)",
    "reupload": "PUT /api/batches/<id or reference>/",
    "calculate": "POST /api/batches/<id or reference>/calculate/",
    "batch": "GET /api/batches/<id or reference>/",
    "batch_activities": "GET /api/batches/<id or reference>/activities/?page=&page_size=",
    "batches": "GET /api/batches/",
    "totals": "GET /api/emissions/totals/?group_by=scope|category|site|month&batch=",
    "activities": "GET /api/activities/?scope=&site=&category=&date_from=&date_to=&page=",
    "by_site": "GET /api/activities/by-site/?site=&page=&page_size=",
}


@api_view("GET")
def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"endpoints": ENDPOINTS})
