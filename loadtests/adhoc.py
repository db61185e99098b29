"""Ad hoc runs: one URL, no stored definition (`loadtest url`). The config is a frozen config
like any run's, so the worker-side code, the run page and the summaries need nothing special.

The flags speak curl's and k6's language (`-X`, `-H`, `-d`, `--threshold 'p95<200'`); the
parsers below turn each into the frozen config's terms, and raise FlagProblem naming the rule,
so that the CLI can name the flag too. The rules themselves are the engine's (validators).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from loadtests import documents
from loadtests.engine.config import DEFAULT_SUCCESS_TEXT, STATUS_CODES
from loadtests.engine.flags import DEFAULT_TIMEOUT_S, MIN_DEFAULT_CONNECTIONS
from loadtests.models import LoadModel, LoadTestRun, RunTrigger
from loadtests.validators import HTTP_METHODS, validate_headers, validate_step_path

# What k6 and Locust count as success: every 2xx and 3xx (redirects are not followed).
DEFAULT_EXPECT = DEFAULT_SUCCESS_TEXT
# k6's threshold names (and its p(95) spelling) -> the frozen config's threshold keys, with
# the comparison each allows: latencies and the error rate are upper limits, rps a lower one.
THRESHOLD_NAMES = {
    "p95": ("p95_ms", "<"),
    "p(95)": ("p95_ms", "<"),
    "p99": ("p99_ms", "<"),
    "p(99)": ("p99_ms", "<"),
    "errors": ("error_rate_pct", "<"),
    "rps": ("min_throughput_rps", ">"),
}
THRESHOLD_RULE = "give p95<MS, p99<MS, errors<PCT% or rps>N, e.g. p95<200"
_THRESHOLD = re.compile(r"\s*([a-z()0-9]+)\s*([<>]=?)\s*([0-9]*\.?[0-9]+)\s*(ms|s|%)?\s*")


class FlagProblem(ValueError):
    """A flag's value breaks a rule; the message states the rule."""


@dataclass
class Request:
    """What one ad hoc request looks like: curl's -X, -H and -d."""

    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expected_statuses: tuple[int, ...] = ()


def parse_method(text: str) -> str:
    method = text.upper()
    if method not in HTTP_METHODS:
        raise FlagProblem(f"the method must be one of {', '.join(HTTP_METHODS)}")
    return method


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' -> (name, value), checked by the engine's header rules."""
    name, colon, value = text.partition(":")
    if not colon:
        raise FlagProblem("give a header as 'Name: value'")
    name, value = name.strip(), value.strip()
    try:
        validate_headers({name: value})
    except ValidationError as exc:
        raise FlagProblem(" ".join(exc.messages)) from None
    return name, value


def parse_headers(items: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items or []:
        name, value = parse_header(item)
        if any(existing.lower() == name.lower() for existing in headers):
            raise FlagProblem(f"{name} is given twice; give each header once")
        headers[name] = value
    return headers


def parse_expect(text: str) -> tuple[int, ...]:
    """'200-399' or '200,201,404' (or a mix) -> the sorted status codes."""
    codes: set[int] = set()
    for item in text.replace(" ", "").split(","):
        low, dash, high = item.partition("-")
        if not _is_code(low) or (dash and not _is_code(high)):
            raise FlagProblem(
                f"{item!r} is not a status code or range of them "
                f"({STATUS_CODES[0]}-{STATUS_CODES[-1]}), e.g. 200-399 or 200,201"
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise FlagProblem(f"{item!r}: a range goes from the lower code to the higher")
        codes.update(range(first, last + 1))
    return tuple(sorted(codes))


def _is_code(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) in STATUS_CODES


def parse_threshold(text: str) -> tuple[str, float]:
    """k6's syntax -> (the frozen config's threshold key, its limit): 'p95<200' -> ('p95_ms',
    200.0); 'p95<1s' -> 1000 ms; 'errors<1%' -> ('error_rate_pct', 1.0); 'rps>100'. Limits
    are inclusive, as on the dashboard: p95<200 passes at exactly 200 ms."""
    match = _THRESHOLD.fullmatch(text.lower())
    if not match or match.group(1) not in THRESHOLD_NAMES:
        raise FlagProblem(THRESHOLD_RULE)
    name, op, number, unit = match.groups()
    key, allowed = THRESHOLD_NAMES[name]
    if op[0] != allowed:
        raise FlagProblem(
            f"{name} takes an {'upper' if allowed == '<' else 'lower'} limit ({allowed})"
        )
    limit = float(number)
    if key == "error_rate_pct":
        if unit != "%" or limit > 100:
            raise FlagProblem("give the error rate as a percentage from 0 to 100, e.g. errors<1%")
    elif unit == "%" or (key == "min_throughput_rps" and unit):
        raise FlagProblem(THRESHOLD_RULE)
    elif unit == "s":
        limit *= 1000.0
    return key, limit


def parse_thresholds(items: list[str] | None) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for item in items or []:
        key, limit = parse_threshold(item)
        if key in thresholds:
            raise FlagProblem(f"{item!r} sets a limit already given; give each once")
        thresholds[key] = limit
    return thresholds


def split_url(url: str) -> tuple[str, str]:
    """The base URL (scheme and host) and the path with its query, the path checked by the
    engine's rule."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        validate_step_path(path)
    except ValidationError as exc:
        raise FlagProblem(" ".join(exc.messages)) from None
    return f"{parts.scheme}://{parts.netloc}", path


def adhoc_config(
    url: str,
    *,
    duration_s: int,
    users: int = 0,
    rate_rps: float = 0.0,
    load_model: str | None = None,
    think_time_min_s: float = 0.0,
    think_time_max_s: float = 0.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_connections: int | None = None,
    verify_tls: bool = True,
    request: Request | None = None,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The frozen config of an ad hoc run; the load settings in the document's names, as
    `flags.load_fields` gives them (the model is the open one when a rate is given)."""
    request = request or Request()
    base, path = split_url(url)
    if max_connections is None:
        max_connections = max(users, MIN_DEFAULT_CONNECTIONS)
    return {
        "version": documents.VERSION,
        "name": f"ad hoc: {request.method} {url}",
        "description": "",
        "mode": "requests",
        "data_set": None,
        "target_base_url": base,
        "load_model": load_model or (LoadModel.OPEN if rate_rps else LoadModel.CLOSED),
        "users": users,
        "rate_rps": rate_rps,
        "think_time_min_s": think_time_min_s,
        "think_time_max_s": think_time_max_s,
        "duration_s": duration_s,
        "timeout_s": timeout_s,
        "max_connections": max_connections,
        "follow_redirects": False,
        "verify_tls": verify_tls,
        "abort_error_rate_pct": None,
        "shards": 1,
        "agent_tagging": True,
        "steps": [
            {
                "name": request.method.lower(),
                "method": request.method,
                "path": path,
                "headers": dict(request.headers),
                "secret_headers": [],
                "body": request.body,
                "weight": 1,
                "expected_statuses": list(
                    request.expected_statuses or parse_expect(DEFAULT_EXPECT)
                ),
                "check_type": "",
                "check_path": "",
                "check_value": "",
                "extract": [],
                "poll": None,
            }
        ],
        "stages": [],
        "thresholds": {
            "p95_ms": None,
            "p99_ms": None,
            "error_rate_pct": None,
            "min_throughput_rps": None,
            "iteration_p95_ms": None,
            **(thresholds or {}),
        },
        "tags": [],
    }


def create_adhoc_run(frozen: dict[str, Any], *, trigger: str = RunTrigger.CLI) -> LoadTestRun:
    """A queued run of an ad hoc config; raises RunRefused when it may not start."""
    problems = documents.config_problems(frozen)
    if problems:
        raise documents.RunRefused(problems)
    return LoadTestRun.objects.create(
        name=frozen["name"],
        config=frozen,
        trigger=trigger,
        planned_duration_s=int(frozen["duration_s"]),
    )
