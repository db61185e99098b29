"""Request guards that hold for every page, the admin's included."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from loadtests.engine.jsoninput import shown_key

NUL = "\x00"
NUL_RULE = "may not contain a NUL character (%00): PostgreSQL cannot store or compare one."
# JSON endpoints: their bodies go through the JSON parser (jsoninput), and their errors are JSON.
API_PREFIXES = ("/api/",)


class RefuseNulMiddleware:
    """Answer 400, naming the parameter, to a path or query parameter holding a NUL character.
    Either may reach a query (an admin filter such as `?status__exact=%00`, a search, a name in
    the path), and PostgreSQL refuses NUL in text: a 500 otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = _nul_field(request)
        if field is None:
            return self.get_response(request)
        message = f"{field} {NUL_RULE}"
        if request.path.startswith(API_PREFIXES):
            return JsonResponse({"errors": {field: [message]}}, status=400)
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _nul_field(request: HttpRequest) -> str | None:
    # Bodies are left to their views: some read their own stream (the emissions uploads), and
    # forms refuse NUL themselves (Django's CharField), JSON through loadtests' one parser.
    if NUL in request.path:
        return "The path"
    for name, values in request.GET.lists():
        if NUL in name or any(NUL in value for value in values):
            return f"The query parameter {shown_key(name)!r}"
    return None
