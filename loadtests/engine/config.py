"""The engine's input: plain, frozen, JSON-serialisable dataclasses with validation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from loadtests.engine.extract import parse_json_path, regex_problem, split_header_expression
from loadtests.engine.templates import (
    RESERVED_NAMES,
    TemplateError,
    compile_template,
    has_template,
    render_placeholder,
)

OPEN = "open"
CLOSED = "closed"
MODELS = (OPEN, CLOSED)
REQUESTS = "requests"
FLOW = "flow"
MODES = (REQUESTS, FLOW)
SEQUENTIAL, RANDOM, UNIQUE = "sequential", "random", "unique"
DATA_ORDERS = (SEQUENTIAL, RANDOM, UNIQUE)
EXTRACT_SOURCES = ("json", "header", "regex", "cookie")
MAX_POLL_ATTEMPTS = 1000
MAX_POLL_INTERVAL_S = 60.0
POLL_RULE = f"A poll makes 1 to {MAX_POLL_ATTEMPTS} attempts, 0 to {MAX_POLL_INTERVAL_S:g} s apart."
# An empty expected_statuses accepts what k6 and Locust count as success. Requests mode, flow
# mode, their error messages, the form's help and the documents all take it from here.
DEFAULT_SUCCESS = range(200, 400)
DEFAULT_SUCCESS_TEXT = f"{DEFAULT_SUCCESS[0]}-{DEFAULT_SUCCESS[-1]}"
# A document's step without the field at all: requests mode keeps what documents always
# meant ([200]); a flow step names none, so it accepts DEFAULT_SUCCESS.
STATUSES_WHEN_ABSENT = {REQUESTS: (200,), FLOW: ()}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# The limits of a run, wherever it is defined (admin, CLI, API, the engine's own CLI): the
# Django side imports these, so that no two places can disagree.
MAX_USERS = 10_000
MAX_RATE = 1_000_000.0
MAX_CONNECTIONS = 10_000
MAX_DURATION_S = 24 * 3600
MIN_TIMEOUT_S = 0.01
MAX_TIMEOUT_S = 600.0
MAX_WEIGHT = 1000
MAX_BACKLOG = 10_000_000
MIN_TICK_S = 0.05
MAX_TICK_S = 60.0
STATUS_CODES = range(100, 600)
# The sizes of a load test, checked before any heavy work by the engine, the admin's forms,
# `loadtest import` and the API: beyond them a definition is a mistake or an attack (10^6
# steps took 2.6 GB to import; a 20,000-step page weighed 3.3 MB and its admin timed out).
MAX_DOCUMENT_BYTES = 1_000_000  # one JSON text: an API body, an imported file
MAX_JSON_DEPTH = 32  # a document nests 4 deep; deeper input is refused before parsing
MAX_STEPS = 500
MAX_STAGES = 100
MAX_HEADERS = 64  # per step
MAX_HEADER_NAME_BYTES = 256
MAX_HEADER_VALUE_BYTES = 8 * 1024  # what common servers accept in one header line
MAX_STEP_BODY_BYTES = 256 * 1024  # a step's request body, sent by every request of it
MAX_DATA_ROWS = 100_000  # every shard holds the rows in memory
# An error lists at most this many problems, then says how many more there are.
MAX_PROBLEMS_SHOWN = 10
STEPS_RULE = f"A load test has at most {MAX_STEPS} steps (MAX_STEPS)."
STAGES_RULE = f"A load test has at most {MAX_STAGES} stages (MAX_STAGES)."
HEADERS_RULE = f"A step sends at most {MAX_HEADERS} headers (MAX_HEADERS)."
# Stage durations may be fractions; their sum is compared with the duration to within this.
STAGE_SUM_TOLERANCE_S = 1e-6
# The messages of the range rules, spoken alike by the engine, the model fields' validators
# (the admin), `loadtest import` and the API: one rule, one message.
USERS_RULE = f"The closed model needs 1 to {MAX_USERS} users."
RATE_RULE = f"The open model needs a rate above 0, at most {MAX_RATE:.0f} requests/s."
DURATION_RULE = f"The duration must be above 0 and at most {MAX_DURATION_S:g} s."
TIMEOUT_RULE = f"The timeout must be {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} s."
CONNECTIONS_RULE = f"Allow 1 to {MAX_CONNECTIONS} connections."
WEIGHT_RULE = f"The weight must be a whole number, 1 to {MAX_WEIGHT}."

# RFC 9110 §5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9112 §3.2: a request target has no spaces or controls; anything else is percent-encoded.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")
# RFC 9110 §5.5: no control character but HTAB in a field value (a NUL, CR or LF would end
# or split the header, and PostgreSQL cannot store a NUL in jsonb).
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class ConfigError(ValueError):
    """The config does not validate; `problems` holds (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        shown = capped(problems)
        super().__init__("; ".join(f"{name}: {message}" for name, message in shown))
        self.problems = problems


MORE_PROBLEMS = "(more)"


def more_problems_message(hidden: int) -> str:
    """What an error says instead of the problems beyond MAX_PROBLEMS_SHOWN."""
    return f"{hidden} more problem(s) not shown; fix these first."


def brief(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, saying so: what a message quotes of the input."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def capped(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most MAX_PROBLEMS_SHOWN problems, then one saying how many more there are: an
    error about a million bad stages stays a line, not 77 MB."""
    if len(problems) <= MAX_PROBLEMS_SHOWN:
        return problems
    hidden = len(problems) - MAX_PROBLEMS_SHOWN
    return [*problems[:MAX_PROBLEMS_SHOWN], (MORE_PROBLEMS, more_problems_message(hidden))]


@dataclass(frozen=True)
class Extraction:
    """After a flow step: take a value from its response into a variable.

    `source` is json (a path such as $.items[0].id), header (a name, any case), regex (one
    group, searched in the body) or cookie (a name, from Set-Cookie or the user's jar). A
    header's name may be followed by ` ~ regex` to take the regex's one group of its value.
    """

    variable: str
    source: str
    expression: str


@dataclass(frozen=True)
class Poll:
    """Repeat a flow step until the JSON at `until_path` equals `until_value` (JSON or text,
    like check_value), at most `max_attempts` times, `interval_s` apart."""

    until_path: str
    until_value: object
    max_attempts: int = 20
    interval_s: float = 0.5


def accepted_statuses(expected_statuses: Iterable[int]) -> frozenset[int]:
    """The statuses a step counts as success: those it names, or DEFAULT_SUCCESS when none."""
    return frozenset(expected_statuses) or frozenset(DEFAULT_SUCCESS)


def expected_statuses_text(expected_statuses: Iterable[int]) -> str:
    """How an error message names what a step accepts: "200, 201", "200-299, 500", or
    DEFAULT_SUCCESS_TEXT when it names none. Runs of three or more codes read as a range."""
    runs: list[list[int]] = []
    for code in sorted(set(expected_statuses)):
        if runs and code == runs[-1][-1] + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    parts = []
    for run in runs:
        parts += [f"{run[0]}-{run[-1]}"] if len(run) > 2 else [str(code) for code in run]
    return ", ".join(parts) or DEFAULT_SUCCESS_TEXT


@dataclass(frozen=True)
class Step:
    """One kind of request. A run picks steps at random in proportion to their weights
    (requests mode) or runs them top to bottom once per iteration (flow mode).

    `path`, header values and `body` may hold {{ ... }} templates (see templates.py);
    an empty `expected_statuses` accepts DEFAULT_SUCCESS (200-399), see `accepted_statuses`.
    """

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    weight: int = 1
    expected_statuses: tuple[int, ...] = (200,)
    check_contains: str | None = None
    check_json_field: str | None = None  # dotted path, e.g. "data.items.0.id"
    check_json_value: object = None
    extract: tuple[Extraction, ...] = ()
    poll: Poll | None = None

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

    target_base_url: str
    steps: tuple[Step, ...]
    load_model: str
    duration_s: float
    users: int = 0
    rate_rps: float = 0.0
    think_time_min_s: float = 0.0
    think_time_max_s: float = 0.0
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
    mode: str = REQUESTS
    # The data set's rows for {{ row.* }}, filled by whoever loads the data set (the Django
    # side); only the columns are needed to validate templates.
    data_rows: tuple[dict[str, str], ...] = ()
    data_columns: tuple[str, ...] = ()
    data_order: str = SEQUENTIAL

    def validate(self) -> list[tuple[str, str]]:
        """(field, message) for every bad field; empty when the config can run."""
        problems = size_problems(len(self.steps), len(self.stages))
        if problems:
            # Nothing else is checked: the rules below walk every step and stage.
            return problems
        problems += _url_problems(self.target_base_url)
        problems += _model_problems(self)
        problems += _steps_problems(self.steps)
        problems += _stage_problems(self)
        problems += _limit_problems(self)
        problems += _flow_problems(self)
        return problems

    @property
    def is_open(self) -> bool:
        return self.load_model == OPEN

    @property
    def is_flow(self) -> bool:
        return self.mode == FLOW

    def to_dict(self) -> dict[str, Any]:
        """The config as a load-test document's fields, JSON-serialisable; `from_dict` turns it
        back into an equal config. The engine-only settings a document does not carry appear
        only when not the default."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ENGINE_ONLY and value == f.default:
                continue
            data[f.name] = value
        data["steps"] = [_step_to_dict(step) for step in self.steps]
        data["stages"] = [asdict(stage) for stage in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        """A config from a dict in the document's names (a load-test document, or `to_dict`'s
        output); keys the engine does not use (name, thresholds, tags, ...) are ignored."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        mode = data.get("mode") or REQUESTS
        values["steps"] = tuple(_step_from_dict(step, mode) for step in data.get("steps") or ())
        for name in ("data_rows", "data_columns"):
            if name in values:
                values[name] = tuple(values[name])
        values["stages"] = tuple(
            Stage(duration_s=s["duration_s"], target=s["target"]) for s in data.get("stages") or ()
        )
        return cls(**values)


# Tuning a document does not carry (the engine's own CLI and tests set them).
ENGINE_ONLY = frozenset(
    {
        "start_target", "max_backlog", "abort_window_s", "abort_min_requests", "tick_s",
        "data_rows", "data_columns", "data_order",
    }
)  # fmt: skip
CHECK_CONTAINS = "contains"
CHECK_JSON_EQUALS = "json_equals"


def check_value_of(text: str) -> object:
    """The value a json_equals check compares with: `text` read as JSON, else `text` itself
    (so `ok` and `"ok"` both mean the string ok)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_text(value: object) -> str:
    if isinstance(value, str) and check_value_of(value) == value:
        return value
    return json.dumps(value)


def _step_to_dict(step: Step) -> dict[str, Any]:
    check: dict[str, Any] = {"check_type": "", "check_path": "", "check_value": ""}
    if step.check_contains is not None:
        check = {**check, "check_type": CHECK_CONTAINS, "check_value": step.check_contains}
    elif step.check_json_field is not None:
        check = {
            "check_type": CHECK_JSON_EQUALS,
            "check_path": step.check_json_field,
            "check_value": _check_text(step.check_json_value),
        }
    return {
        "name": step.name,
        "method": step.method,
        "path": step.path,
        "headers": dict(step.headers),
        "body": step.body,
        "weight": step.weight,
        "expected_statuses": list(step.expected_statuses),
        **check,
        "extract": [
            {"variable": e.variable, "from": e.source, "expression": e.expression}
            for e in step.extract
        ],
        "poll": asdict(step.poll) if step.poll is not None else None,
    }


def _step_from_dict(data: dict[str, Any], mode: str = REQUESTS) -> Step:
    check_type = data.get("check_type") or ""
    statuses = data.get("expected_statuses")
    if statuses is None:
        statuses = STATUSES_WHEN_ABSENT.get(mode, STATUSES_WHEN_ABSENT[REQUESTS])
    poll = data.get("poll")
    return Step(
        name=data["name"],
        method=data["method"],
        path=data["path"],
        headers=dict(data.get("headers") or {}),
        body=data.get("body") or None,
        weight=data.get("weight", 1),
        expected_statuses=tuple(statuses),
        check_contains=data.get("check_value") if check_type == CHECK_CONTAINS else None,
        check_json_field=data.get("check_path") if check_type == CHECK_JSON_EQUALS else None,
        check_json_value=(
            check_value_of(data.get("check_value") or "")
            if check_type == CHECK_JSON_EQUALS
            else None
        ),
        extract=tuple(
            Extraction(variable=e["variable"], source=e["from"], expression=e["expression"])
            for e in data.get("extract") or ()
        ),
        poll=Poll(**poll) if poll else None,
    )


# -- validation rules ----------------------------------------------------------------------


def is_visible_ascii(text: str) -> bool:
    """True when `text` is printable ASCII without spaces: what a request line may carry."""
    return _VISIBLE_ASCII.fullmatch(text) is not None


def path_problem(path: object) -> str | None:
    """Why `path` cannot be a step's path (the request target after the base URL), or None.

    The one check for everything the engine puts into a request line: step paths when a
    run is prepared, redirect locations while it runs.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        return "The path must start with '/'."
    if not is_visible_ascii(path):
        return (
            "The path must be printable ASCII without spaces or control characters; "
            "percent-encode anything else (a space is %20)."
        )
    return None


def url_problem(target_base_url: object) -> str | None:
    """Why `target_base_url` cannot be a run's base URL, or None."""
    if not isinstance(target_base_url, str) or not target_base_url:
        return "Give the target's base URL, e.g. http://127.0.0.1:8000."
    if not is_visible_ascii(target_base_url):
        return (
            "The URL must be printable ASCII without spaces or control characters "
            "(percent-encode the path; IDNA for host names)."
        )
    try:
        parts = urlsplit(target_base_url)
    except ValueError as exc:
        return f"Not a valid URL: {exc}."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with http:// or https://."
    if not parts.hostname:
        return "The URL must name a host."
    if parts.query or parts.fragment:
        return "The base URL takes no query or fragment; put them in a step path."
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "The port must be a number from 1 to 65535."
    return None


def size_problems(steps: int, stages: int) -> list[tuple[str, str]]:
    """The size rules, told from the counts alone: checked before anything walks the steps."""
    problems = []
    if steps > MAX_STEPS:
        problems.append(("steps", f"{steps} steps given. {STEPS_RULE}"))
    if stages > MAX_STAGES:
        problems.append(("stages", f"{stages} stages given. {STAGES_RULE}"))
    return problems


def step_body_problem(size: int) -> str:
    """What a step body of `size` bytes over MAX_STEP_BODY_BYTES is told."""
    return (
        f"The body is {size} bytes; a step's body is at most {MAX_STEP_BODY_BYTES} bytes "
        "(MAX_STEP_BODY_BYTES)."
    )


def _size_of(text: str) -> int:
    # UTF-8, as the engine sends it; a character is at most 4 bytes, so most need no copy.
    if len(text) * 4 <= MAX_STEP_BODY_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def header_count_problem(headers: object) -> str | None:
    """Why a step cannot send this many headers, or None."""
    if isinstance(headers, dict) and len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers given. {HEADERS_RULE}"
    return None


def header_name_problem(name: object) -> str | None:
    """Why `name` cannot be a request header's name, or None."""
    if isinstance(name, str) and len(name) > MAX_HEADER_NAME_BYTES:
        return (
            f"A header name is at most {MAX_HEADER_NAME_BYTES} characters "
            f"(MAX_HEADER_NAME_BYTES); this one has {len(name)}."
        )
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        return (
            f"{name!r} is not a valid header name: use letters, digits and "
            "!#$%&'*+-.^_`|~ only (no spaces, tabs or separators such as ( : ,)."
        )
    if name.lower() in _RESERVED_HEADERS:
        return f"The engine sets {name} itself."
    return None


def header_value_problem(name: str, value: object) -> str | None:
    """Why `value` cannot be the value of header `name`, or None."""
    if not isinstance(value, str):
        return f"The value of {name} must be text."
    if len(value) > MAX_HEADER_VALUE_BYTES:
        return (
            f"The value of {name} is {len(value)} characters; a header value is at most "
            f"{MAX_HEADER_VALUE_BYTES} (MAX_HEADER_VALUE_BYTES)."
        )
    if _VALUE_CONTROL.search(value):
        return f"The value of {name} may not contain control characters (NUL, line breaks)."
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return (
            f"The value of {name} must be Latin-1 text (HTTP sends header values as bytes); "
            "encode other characters, e.g. percent-encode them."
        )
    return None


def stage_target_limit(load_model: str) -> float:
    """The highest stage target: users for the closed model, requests/s for the open one."""
    return MAX_RATE if load_model == OPEN else MAX_USERS


def _stage_target_rule(load_model: str) -> str:
    unit = "requests/s" if load_model == OPEN else "users"
    return f"0 to {stage_target_limit(load_model):.0f} {unit}"


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _url_problems(target_base_url: str) -> list[tuple[str, str]]:
    problem = url_problem(target_base_url)
    return [("target_base_url", problem)] if problem else []


def _model_problems(config: EngineConfig) -> list[tuple[str, str]]:
    if config.load_model not in MODELS:
        return [
            ("load_model", "The load model must be 'open' (a request rate) or 'closed' (users).")
        ]
    problems = []
    if config.load_model == CLOSED and not config.stages:
        if not _is_whole(config.users):
            problems.append(("users", "Users must be a whole number."))
        elif not 1 <= config.users <= MAX_USERS:
            problems.append(("users", USERS_RULE))
    bad_rate = not _is_number(config.rate_rps) or not 0 < config.rate_rps <= MAX_RATE
    if config.load_model == OPEN and not config.stages and bad_rate:
        problems.append(("rate_rps", RATE_RULE))
    if not _is_number(config.think_time_min_s) or config.think_time_min_s < 0:
        problems.append(("think_time_min_s", "Think time must be 0 or more seconds."))
    if not _is_number(config.think_time_max_s) or config.think_time_max_s < 0:
        problems.append(("think_time_max_s", "Think time must be 0 or more seconds."))
    elif _is_number(config.think_time_min_s) and config.think_time_max_s < config.think_time_min_s:
        problems.append(
            ("think_time_max_s", "The longest think time must not be below the shortest.")
        )
    if config.load_model == OPEN and (config.think_time_min_s or config.think_time_max_s):
        problems.append(("think_time_min_s", "Think time applies to the closed model only."))
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
            problems.append(
                (f"{prefix}.name", f"Step names must be unique ({brief(repr(step.name))}).")
            )
        if step.method not in METHODS:
            problems.append(
                (f"{prefix}.method", f"The method must be one of {', '.join(METHODS)}.")
            )
        problem = path_problem(_static_text(step.path))
        if problem:
            problems.append((f"{prefix}.path", problem))
        problems += _header_problems(prefix, step.headers)
        if step.body is not None and not isinstance(step.body, str):
            problems.append((f"{prefix}.body", "The body must be text."))
        elif step.body is not None and _size_of(step.body) > MAX_STEP_BODY_BYTES:
            problems.append((f"{prefix}.body", step_body_problem(_size_of(step.body))))
        if not _is_whole(step.weight) or not 1 <= step.weight <= MAX_WEIGHT:
            problems.append((f"{prefix}.weight", WEIGHT_RULE))
        if not all(_is_whole(code) and code in STATUS_CODES for code in step.expected_statuses):
            problems.append(
                (
                    f"{prefix}.expected_statuses",
                    f"Expect codes 100..599 (none means {DEFAULT_SUCCESS_TEXT}).",
                )
            )
        if step.check_contains is not None and not step.check_contains:
            problems.append((f"{prefix}.check_value", "The text to look for is empty."))
        if step.check_json_field is not None and not step.check_json_field.strip("."):
            problems.append((f"{prefix}.check_path", "Name a JSON field, e.g. data.id."))
    return problems


def _header_problems(prefix: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(headers, dict):
        return [(f"{prefix}.headers", "Headers must be a mapping of name to value.")]
    too_many = header_count_problem(headers)
    if too_many:
        return [(f"{prefix}.headers", too_many)]
    problems = []
    for name, value in headers.items():
        problem = header_name_problem(name) or header_value_problem(name, _static_text(value))
        if problem:
            problems.append((f"{prefix}.headers", problem))
    return problems


def _stage_problems(config: EngineConfig) -> list[tuple[str, str]]:
    problems = []
    if not _is_number(config.duration_s) or not 0 < config.duration_s <= MAX_DURATION_S:
        problems.append(("duration_s", DURATION_RULE))
    if not config.stages:
        return problems
    limit = stage_target_limit(config.load_model)
    for index, stage in enumerate(config.stages):
        if not _is_number(stage.duration_s) or stage.duration_s <= 0:
            problems.append((f"stages[{index}].duration_s", "A stage lasts more than 0 s."))
        if not _is_number(stage.target) or not 0 <= stage.target <= limit:
            problems.append(
                (
                    f"stages[{index}].target",
                    f"A stage's target must be {_stage_target_rule(config.load_model)}.",
                )
            )
    if problems:
        return problems
    if max(stage.target for stage in config.stages) <= 0:
        problems.append(("stages", "At least one stage needs a target above 0."))
    total = sum(stage.duration_s for stage in config.stages)
    if _is_number(config.duration_s) and abs(total - config.duration_s) > STAGE_SUM_TOLERANCE_S:
        problems.append(
            ("stages", f"The stage durations add up to {total:g} s but the definition's "
             f"duration is {config.duration_s:g} s; they must be equal (or remove the stages "
             "to hold one level).")
        )  # fmt: skip
    if config.start_target is not None and (
        not _is_number(config.start_target) or not 0 <= config.start_target <= limit
    ):
        problems.append(
            (
                "start_target",
                f"The starting target must be {_stage_target_rule(config.load_model)}.",
            )
        )
    return problems


def _limit_problems(config: EngineConfig) -> list[tuple[str, str]]:
    problems = []
    if not _is_number(config.timeout_s) or not MIN_TIMEOUT_S <= config.timeout_s <= MAX_TIMEOUT_S:
        problems.append(("timeout_s", TIMEOUT_RULE))
    if not _is_whole(config.max_connections) or not 1 <= config.max_connections <= MAX_CONNECTIONS:
        problems.append(("max_connections", CONNECTIONS_RULE))
    if not _is_whole(config.max_backlog) or not 0 <= config.max_backlog <= MAX_BACKLOG:
        problems.append(("max_backlog", "The backlog bound is a whole number (0 = automatic)."))
    rate = config.abort_error_rate_pct
    if rate is not None and (not _is_number(rate) or not 0 <= rate <= 100):
        problems.append(("abort_error_rate_pct", "The abort error rate is a percentage, 0..100."))
    if not _is_whole(config.abort_window_s) or config.abort_window_s < 1:
        problems.append(("abort_window_s", "The abort window is a whole number of seconds, 1+."))
    if not _is_whole(config.abort_min_requests) or config.abort_min_requests < 1:
        problems.append(("abort_min_requests", "The abort minimum is a whole number, 1 or more."))
    if not _is_number(config.tick_s) or not MIN_TICK_S <= config.tick_s <= MAX_TICK_S:
        problems.append(("tick_s", f"The tick must be {MIN_TICK_S:g} to {MAX_TICK_S:g} s."))
    return problems


def _static_text(text: object) -> object:
    """What static checks see of a templated text: each {{ ... }} as `x`."""
    return render_placeholder(text) if isinstance(text, str) and has_template(text) else text


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _flow_problems(config: EngineConfig) -> list[tuple[str, str]]:
    """Mode, data set, extraction and poll rules, and every template compiled."""
    if config.mode not in MODES:
        return [("mode", "The mode must be 'requests' (independent steps) or 'flow'.")]
    problems: list[tuple[str, str]] = []
    if config.data_order not in DATA_ORDERS:
        problems.append(("data_order", f"The data order must be one of {', '.join(DATA_ORDERS)}."))
    columns = data_columns_of(config)
    defined: list[str] = []
    for index, step in enumerate(config.steps):
        prefix = f"steps[{index}]"
        # Names this step or a later one extracts: a template here cannot use them yet (the
        # request goes out before its own extraction).
        later = _extracted_by(config.steps[index:]) if config.is_flow else {}
        if not config.is_flow and (step.extract or step.poll is not None):
            problems.append(
                (f"{prefix}.extract" if step.extract else f"{prefix}.poll",
                 "Extraction and polling need the flow mode (steps run in order).")
            )  # fmt: skip
        variables = tuple(defined) if config.is_flow else None
        problems += _template_problems(prefix, step, variables, columns, later)
        problems += _extraction_problems(prefix, step.extract)
        problems += _poll_problems(prefix, step.poll)
        for extraction in step.extract:
            if extraction.variable not in defined:
                defined.append(extraction.variable)
    return problems


def data_columns_of(config: EngineConfig) -> tuple[str, ...] | None:
    """The data set's columns (from the rows when not given), or None without a data set."""
    if config.data_columns:
        return tuple(config.data_columns)
    return tuple(config.data_rows[0]) if config.data_rows else None


def _extracted_by(steps: tuple[Step, ...]) -> dict[str, str]:
    names: dict[str, str] = {}
    for step in steps:
        for extraction in step.extract:
            names.setdefault(extraction.variable, step.name)
    return names


def _template_problems(
    prefix: str,
    step: Step,
    variables: tuple[str, ...] | None,
    columns: tuple[str, ...] | None,
    later: dict[str, str],
) -> list[tuple[str, str]]:
    texts: list[tuple[str, object]] = [("path", step.path), ("body", step.body)]
    if isinstance(step.headers, dict):
        texts += [("headers", value) for value in step.headers.values()]
    problems = []
    for name, text in texts:
        if not isinstance(text, str) or not has_template(text):
            continue
        try:
            compile_template(text, variables=variables, columns=columns, later=later)
        except TemplateError as exc:
            problems.append((f"{prefix}.{name}", str(exc)))
    return problems


def _extraction_problems(prefix: str, extract: tuple[Extraction, ...]) -> list[tuple[str, str]]:
    problems = []
    field_name = f"{prefix}.extract"
    for position, extraction in enumerate(extract):
        where = f"Extraction {position + 1}"
        variable = extraction.variable
        if not isinstance(variable, str) or not _VARIABLE.fullmatch(variable):
            problems.append(
                (field_name, f"{where}: the variable {variable!r} must be a name of letters, "
                 "digits and _ that does not start with a digit.")
            )  # fmt: skip
        elif variable in RESERVED_NAMES:
            problems.append((field_name, f"{where}: {variable!r} is a built-in name."))
        if extraction.source not in EXTRACT_SOURCES:
            problems.append(
                (field_name, f"{where}: 'from' must be one of {', '.join(EXTRACT_SOURCES)}.")
            )
            continue
        problem = _expression_problem(extraction.source, extraction.expression)
        if problem:
            problems.append((field_name, f"{where} ({variable}): {problem}"))
    return problems


def _expression_problem(source: str, expression: object) -> str | None:
    if not isinstance(expression, str) or not expression.strip():
        return "Give an expression (a JSON path, header, regex or cookie name)."
    if source == "json":
        try:
            parse_json_path(expression)
        except ValueError as exc:
            return f"Not a JSON path: {exc}."
        return None
    if source == "regex":
        return regex_problem(expression)
    if source == "header":
        header, regex = split_header_expression(expression)
        if not _TOKEN.fullmatch(header):
            return "Not a header name."
        return regex_problem(regex) if regex is not None else None
    if not _TOKEN.fullmatch(expression.strip()):
        return "Not a cookie name."
    return None


def _poll_problems(prefix: str, poll: Poll | None) -> list[tuple[str, str]]:
    if poll is None:
        return []
    problems = []
    try:
        parse_json_path(poll.until_path if isinstance(poll.until_path, str) else "")
    except ValueError as exc:
        problems.append((f"{prefix}.poll", f"The poll's path is not a JSON path: {exc}."))
    attempts_ok = _is_whole(poll.max_attempts) and 1 <= poll.max_attempts <= MAX_POLL_ATTEMPTS
    interval_ok = _is_number(poll.interval_s) and 0 <= poll.interval_s <= MAX_POLL_INTERVAL_S
    if not attempts_ok or not interval_ok:
        problems.append((f"{prefix}.poll", POLL_RULE))
    return problems
