"""The engine's input: plain, frozen, JSON-serialisable dataclasses with validation."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

OPEN = "open"
CLOSED = "closed"
MODELS = (OPEN, CLOSED)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_USERS = 100_000
MAX_RATE = 1_000_000.0
MAX_CONNECTIONS = 10_000
MAX_DURATION_S = 7 * 24 * 3600.0

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Step:
    """One kind of request. A run picks steps at random in proportion to their weights."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    weight: int = 1
    expect_status: tuple[int, ...] = (200,)
    check_contains: str | None = None
    check_json_field: str | None = None  # dotted path, e.g. "data.items.0.id"
    check_json_value: object = None

    def __hash__(self) -> int:
        return hash((self.name, self.method, self.path))

    @property
    def needs_body(self) -> bool:
        return self.check_contains is not None or self.check_json_field is not None


@dataclass(frozen=True)
class Stage:
    """Ramp linearly from the previous stage's target to `target` over `duration_s` (k6).

    `target` is virtual users for the closed model and requests per second for the open one.
    """

    duration_s: float
    target: float


@dataclass(frozen=True)
class EngineConfig:
    """Everything a run needs. `validate()` lists problems instead of raising."""

    base_url: str
    steps: tuple[Step, ...]
    model: str
    duration_s: float
    users: int = 0
    rate: float = 0.0
    think_min_s: float = 0.0
    think_max_s: float = 0.0
    stages: tuple[Stage, ...] = ()
    # Where the first stage ramps from; None means 0 (k6). Ignored without stages.
    start_target: float | None = None
    timeout_s: float = 10.0
    max_connections: int = 100
    # Open model: requests that may wait for a connection before new ones count as
    # `dropped`; 0 picks 10 x the peak rate, between 1,000 and 100,000.
    max_backlog: int = 0
    abort_error_rate_pct: float | None = 5.0
    abort_window_s: int = 10
    abort_min_requests: int = 20
    follow_redirects: bool = False
    verify_tls: bool = True
    tick_s: float = 1.0

    def validate(self) -> list[tuple[str, str]]:
        """(field, message) for every bad field; empty when the config can run."""
        problems: list[tuple[str, str]] = []
        problems += _url_problems(self.base_url)
        problems += _model_problems(self)
        problems += _steps_problems(self.steps)
        problems += _stage_problems(self)
        problems += _limit_problems(self)
        return problems

    @property
    def is_open(self) -> bool:
        return self.model == OPEN

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `from_dict` turns it back into an equal config."""
        data = asdict(self)
        data["steps"] = [_step_to_dict(step) for step in self.steps]
        data["stages"] = [asdict(stage) for stage in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["steps"] = tuple(_step_from_dict(step) for step in data.get("steps", ()))
        values["stages"] = tuple(
            Stage(duration_s=float(s["duration_s"]), target=float(s["target"]))
            for s in data.get("stages", ())
        )
        return cls(**values)


def _step_to_dict(step: Step) -> dict[str, Any]:
    data = asdict(step)
    data["expect_status"] = list(step.expect_status)
    return data


def _step_from_dict(data: dict[str, Any]) -> Step:
    known = {f.name for f in fields(Step)}
    values = {key: value for key, value in data.items() if key in known}
    values["headers"] = dict(values.get("headers") or {})
    values["expect_status"] = tuple(values.get("expect_status") or (200,))
    return Step(**values)


# -- validation rules ----------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _url_problems(base_url: str) -> list[tuple[str, str]]:
    if not isinstance(base_url, str) or not base_url:
        return [("base_url", "Give the target's base URL, e.g. http://127.0.0.1:8000.")]
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as exc:
        return [("base_url", f"Not a valid URL: {exc}.")]
    if parts.scheme not in ("http", "https"):
        return [("base_url", "The URL must start with http:// or https://.")]
    if not parts.hostname:
        return [("base_url", "The URL must name a host.")]
    if parts.query or parts.fragment:
        return [("base_url", "The base URL takes no query or fragment; put them in a step path.")]
    if port == 0:
        return [("base_url", "Port 0 cannot be connected to.")]
    return []


def _model_problems(config: EngineConfig) -> list[tuple[str, str]]:
    if config.model not in MODELS:
        return [("model", "The load model must be 'open' (a request rate) or 'closed' (users).")]
    problems = []
    if config.model == CLOSED and not config.stages:
        if not isinstance(config.users, int) or isinstance(config.users, bool):
            problems.append(("users", "Users must be a whole number."))
        elif not 1 <= config.users <= MAX_USERS:
            problems.append(("users", f"The closed model needs 1 to {MAX_USERS} users."))
    bad_rate = not _is_number(config.rate) or not 0 < config.rate <= MAX_RATE
    if config.model == OPEN and not config.stages and bad_rate:
        problems.append(("rate", f"The open model needs a rate above 0, at most {MAX_RATE:g}."))
    if not _is_number(config.think_min_s) or config.think_min_s < 0:
        problems.append(("think_min_s", "Think time must be 0 or more seconds."))
    if not _is_number(config.think_max_s) or config.think_max_s < 0:
        problems.append(("think_max_s", "Think time must be 0 or more seconds."))
    elif _is_number(config.think_min_s) and config.think_max_s < config.think_min_s:
        problems.append(("think_max_s", "The longest think time must not be below the shortest."))
    if config.model == OPEN and (config.think_min_s or config.think_max_s):
        problems.append(("think_min_s", "Think time applies to the closed model only."))
    return problems


def _steps_problems(steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    if not steps:
        return [("steps", "Add at least one step.")]
    problems = []
    names = [step.name for step in steps]
    for index, step in enumerate(steps):
        prefix = f"steps[{index}]"
        if not isinstance(step.name, str) or not step.name.strip():
            problems.append((f"{prefix}.name", "Every step needs a name."))
        elif names.count(step.name) > 1:
            problems.append((f"{prefix}.name", f"Step names must be unique ({step.name!r})."))
        if step.method not in METHODS:
            problems.append(
                (f"{prefix}.method", f"The method must be one of {', '.join(METHODS)}.")
            )
        problems += _path_problems(prefix, step.path)
        problems += _header_problems(prefix, step.headers)
        if step.body is not None and not isinstance(step.body, str):
            problems.append((f"{prefix}.body", "The body must be text."))
        if not isinstance(step.weight, int) or isinstance(step.weight, bool) or step.weight < 1:
            problems.append((f"{prefix}.weight", "The weight must be a whole number, 1 or more."))
        if not step.expect_status or not all(
            isinstance(code, int) and 100 <= code <= 599 for code in step.expect_status
        ):
            problems.append((f"{prefix}.expect_status", "Expect one or more codes 100..599."))
        if step.check_contains is not None and not step.check_contains:
            problems.append((f"{prefix}.check_contains", "The text to look for is empty."))
        if step.check_json_field is not None and not step.check_json_field.strip("."):
            problems.append((f"{prefix}.check_json_field", "Name a JSON field, e.g. data.id."))
    return problems


def _path_problems(prefix: str, path: str) -> list[tuple[str, str]]:
    if not isinstance(path, str) or not path.startswith("/"):
        return [(f"{prefix}.path", "The path must start with '/'.")]
    if any(ch in path for ch in " \r\n\t") or not path.isascii():
        return [(f"{prefix}.path", "The path must be URL-encoded ASCII without spaces.")]
    return []


def _header_problems(prefix: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(headers, dict):
        return [(f"{prefix}.headers", "Headers must be a mapping of name to value.")]
    problems = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            problems.append((f"{prefix}.headers", f"{name!r} is not a valid header name."))
        elif name.lower() in _RESERVED_HEADERS:
            problems.append((f"{prefix}.headers", f"The engine sets {name} itself."))
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            problems.append((f"{prefix}.headers", f"The value of {name} must be one line of text."))
    return problems


def _stage_problems(config: EngineConfig) -> list[tuple[str, str]]:
    problems = []
    if not _is_number(config.duration_s) or not 0 < config.duration_s <= MAX_DURATION_S:
        problems.append(
            ("duration_s", f"The duration must be above 0 and at most {MAX_DURATION_S:g} s.")
        )
    if not config.stages:
        return problems
    limit = MAX_RATE if config.model == OPEN else MAX_USERS
    for index, stage in enumerate(config.stages):
        if not _is_number(stage.duration_s) or stage.duration_s <= 0:
            problems.append((f"stages[{index}].duration_s", "A stage lasts more than 0 s."))
        if not _is_number(stage.target) or not 0 <= stage.target <= limit:
            problems.append((f"stages[{index}].target", f"A stage's target must be 0..{limit:g}."))
    if problems:
        return problems
    if max(stage.target for stage in config.stages) <= 0:
        problems.append(("stages", "At least one stage needs a target above 0."))
    total = sum(stage.duration_s for stage in config.stages)
    if _is_number(config.duration_s) and abs(total - config.duration_s) > 1e-6:
        problems.append(
            ("duration_s", f"The stages add up to {total:g} s but the duration is "
             f"{config.duration_s:g} s; they must be equal.")
        )  # fmt: skip
    if config.start_target is not None and (
        not _is_number(config.start_target) or not 0 <= config.start_target <= limit
    ):
        problems.append(("start_target", f"The starting target must be 0..{limit:g}."))
    return problems


def _limit_problems(config: EngineConfig) -> list[tuple[str, str]]:
    problems = []
    if not _is_number(config.timeout_s) or not 0 < config.timeout_s <= 3600:
        problems.append(("timeout_s", "The timeout must be above 0 and at most 3600 s."))
    if (
        not isinstance(config.max_connections, int)
        or not 1 <= config.max_connections <= MAX_CONNECTIONS
    ):
        problems.append(("max_connections", f"Allow 1 to {MAX_CONNECTIONS} connections."))
    if not isinstance(config.max_backlog, int) or not 0 <= config.max_backlog <= 10_000_000:
        problems.append(("max_backlog", "The backlog bound is a whole number (0 = automatic)."))
    rate = config.abort_error_rate_pct
    if rate is not None and (not _is_number(rate) or not 0 <= rate <= 100):
        problems.append(("abort_error_rate_pct", "The abort error rate is a percentage, 0..100."))
    if not isinstance(config.abort_window_s, int) or config.abort_window_s < 1:
        problems.append(("abort_window_s", "The abort window is a whole number of seconds, 1+."))
    if not isinstance(config.abort_min_requests, int) or config.abort_min_requests < 1:
        problems.append(("abort_min_requests", "The abort minimum is a whole number, 1 or more."))
    if not _is_number(config.tick_s) or not 0.05 <= config.tick_s <= 60:
        problems.append(("tick_s", "The tick must be 0.05 to 60 s."))
    return problems
