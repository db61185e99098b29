"""Validators for load-test definitions: each error names the field and the rule.

The rules and limits live once, in the engine (loadtests.engine.config); these wrap them for
Django, so that the admin, the CLI and the engine cannot disagree about what may run.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from loadtests.engine.config import (
    METHODS,
    STATUS_CODES,
    header_count_problem,
    header_name_problem,
    header_value_problem,
    path_problem,
    url_problem,
)
from loadtests.engine.templates import has_template, render_placeholder

# The engine's methods, in the order the admin has always offered them (a migration holds
# the choices): GET and HEAD first, then the rest as the engine lists them.
HTTP_METHODS = ("GET", "HEAD", *(method for method in METHODS if method not in ("GET", "HEAD")))


def ascii_number(text: str, *, maximum: int = 2**31 - 1) -> int | None:
    """`text` as a whole number when it is 1-10 ASCII digits up to `maximum`, else None.

    `int()` also takes '٣', ' 3', '+3' and '3_0', which would let two spellings name one run.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > maximum:
        return None
    return int(text)


def host_is_allowed(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {h.lower() for h in settings.LOADTEST_ALLOWED_HOSTS}


def validate_target_url(url: str) -> None:
    problem = url_problem(url)
    if problem:
        raise ValidationError(problem, code="invalid_url")
    if not host_is_allowed(url):
        allowed = ", ".join(settings.LOADTEST_ALLOWED_HOSTS)
        raise ValidationError(
            f"Host {urlsplit(url).hostname!r} is not in LOADTEST_ALLOWED_HOSTS ({allowed}).",
            code="not_allowed",
        )


def validate_step_path(path: str) -> None:
    # A `{{ ... }}` template is the engine's to compile (EngineConfig.validate); the rest of
    # the path must be a request target as before.
    if isinstance(path, str) and has_template(path):
        path = render_placeholder(path)
    problem = path_problem(path)
    if problem:
        raise ValidationError(problem, code="invalid_path")


def parse_status_codes(text: str) -> tuple[int, ...]:
    """'200, 201' -> (200, 201); raises ValidationError naming the bad item."""
    codes = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or int(item) not in STATUS_CODES:
            raise ValidationError(
                f"{item!r} is not an HTTP status code ({STATUS_CODES[0]}-{STATUS_CODES[-1]})."
            )
        codes.append(int(item))
    if not codes:
        raise ValidationError("Give at least one expected status code, e.g. 200.")
    return tuple(sorted(set(codes)))


def validate_status_codes(text: str) -> None:
    parse_status_codes(text)


def validate_headers(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Headers must be a JSON object, e.g. {"Accept": "application/json"}.')
    too_many = header_count_problem(value)
    if too_many:
        raise ValidationError(too_many, code="invalid_header")
    problems = [
        problem
        for name, header_value in value.items()
        if (problem := header_name_problem(name) or header_value_problem(name, header_value))
    ]
    if problems:
        raise ValidationError(problems, code="invalid_header")


def extraction_problems(value: object) -> list[str]:
    """Why `value` cannot be stored as a step's extractions: a list of {"variable", "from",
    "expression"} texts. What each may say is the engine's rule (EngineConfig.validate)."""
    if not isinstance(value, list):
        return ['Give a list of extractions, e.g. [{"variable": "id", "from": "json", '
                '"expression": "$.id"}].']  # fmt: skip
    return [
        f"Extraction {index}: give exactly variable, from and expression, each as text."
        for index, item in enumerate(value, start=1)
        if not isinstance(item, dict)
        or set(item) != {"variable", "from", "expression"}
        or not all(isinstance(text, str) for text in item.values())
    ]


def validate_extractions(value: object) -> None:
    problems = extraction_problems(value)
    if problems:
        raise ValidationError(problems, code="invalid_extraction")
