"""Load-test documents: the one vocabulary of a load test, and its one translation to and
from the models.

A document (version 1, schema in loadtests/schema/loadtest-v1.schema.json) describes a
definition completely. Its load part is the engine's own dict (`EngineConfig.to_dict`, in the
names users know: `rate_rps`, not `rate`); around it sit the name, description, thresholds
and tags. The same document is what `loadtest export` writes and `loadtest import` reads,
what a definition page downloads, and, with its secrets, a run's frozen config.

Runs frozen before documents existed have no `version`; `upgrade` turns them into version 1
wherever a run's config is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from loadtests import datasets, secrets
from loadtests.engine import jsoninput
from loadtests.engine.config import (
    DEFAULT_SUCCESS_TEXT,
    MAX_DOCUMENT_BYTES,
    MAX_PROBLEMS_SHOWN,
    MORE_PROBLEMS,
    REQUESTS,
    STATUSES_WHEN_ABSENT,
    EngineConfig,
    brief,
    more_problems_message,
    size_problems,
)
from loadtests.models import (
    DataSet,
    LoadTestDefinition,
    LoadTestStage,
    LoadTestStep,
    Mode,
    Tag,
)
from loadtests.validators import parse_status_codes, validate_target_url

VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "loadtest-v1.schema.json"

# Definition fields a document carries under the same name (the load part, as the engine
# names it in its document dict).
LOAD_FIELDS = (
    "target_base_url", "verify_tls", "load_model", "users", "think_time_min_s",
    "think_time_max_s", "rate_rps", "duration_s", "timeout_s", "max_connections",
    "follow_redirects", "abort_error_rate_pct", "shards", "agent_tagging",
)  # fmt: skip
# Document threshold -> definition field.
THRESHOLD_FIELDS = {
    "p95_ms": "threshold_p95_ms",
    "p99_ms": "threshold_p99_ms",
    "error_rate_pct": "threshold_error_rate_pct",
    "min_throughput_rps": "threshold_min_throughput_rps",
    "iteration_p95_ms": "threshold_iteration_p95_ms",
}
STEP_FIELDS = (
    "name", "method", "path", "headers", "secret_headers", "body", "weight",
    "expected_statuses", "check_type", "check_path", "check_value", "extract", "poll",
)  # fmt: skip
STAGE_FIELDS = ("duration_s", "target")
DATA_SET_FIELDS = ("name", "sha256", "order")
POLL_FIELDS = ("until_path", "until_value", "max_attempts", "interval_s")
# Document poll key -> step field.
POLL_STEP_FIELDS = {
    "until_path": "poll_until_path",
    "until_value": "poll_until_value",
    "max_attempts": "poll_max_attempts",
    "interval_s": "poll_interval_s",
}
TOP_FIELDS = frozenset(
    {"version", "name", "description", "mode", "data_set", "steps", "stages", "thresholds",
     "tags", *LOAD_FIELDS}
)  # fmt: skip
PLACEHOLDER = secrets.PLACEHOLDER


def capped_problems(problems: Any) -> Any:
    """`problems` ({field: [messages]}) with at most MAX_PROBLEMS_SHOWN messages, then one
    saying how many more there are; anything else as it is."""
    if not isinstance(problems, Mapping):
        return problems
    shown: dict[str, list[str]] = {}
    count = 0
    for name, messages in problems.items():
        messages = list(messages) if isinstance(messages, list | tuple) else [messages]
        room = MAX_PROBLEMS_SHOWN - count
        if room > 0:
            shown[name] = messages[:room]
        count += len(messages)
    if count > MAX_PROBLEMS_SHOWN:
        shown[MORE_PROBLEMS] = [more_problems_message(count - MAX_PROBLEMS_SHOWN)]
    return shown


class RunRefused(ValidationError):
    """A run that may not start: the message names the field and the rule (a few of them at
    most, then how many more)."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(capped_problems(message), *args, **kwargs)


class DocumentInvalid(ValidationError):
    """A document that cannot become a definition: messages by field path (`steps[2].path`),
    a few of them at most, then how many more."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(capped_problems(message), *args, **kwargs)


def problems_text(exc: ValidationError) -> str:
    """One line per bad field, `field: message`: how the admin, the pages and the CLI show a
    refused run or an invalid document."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items())


# -- models -> document -----------------------------------------------------------------


def _step_dict(step: LoadTestStep) -> dict[str, Any]:
    return {
        "name": step.name,
        "method": step.method,
        "path": step.path,
        "headers": dict(step.headers or {}),
        "secret_headers": list(step.secret_headers or []),
        "body": step.body or None,
        "weight": step.weight,
        "expected_statuses": _statuses(step.expected_statuses),
        "check_type": step.check_type,
        "check_path": step.check_path,
        "check_value": step.check_value,
        "extract": list(step.extract or []),
        "poll": step.poll,
    }


def _statuses(text: str) -> list[int]:
    # Empty: the engine's DEFAULT_SUCCESS (see accepted_statuses).
    return list(parse_status_codes(text)) if text.strip() else []


def _data_set_dict(definition: LoadTestDefinition) -> dict[str, Any] | None:
    data_set = definition.data_set if definition.data_set_id else None
    if data_set is None:
        return None
    return {"name": data_set.name, "sha256": data_set.sha256, "order": definition.data_order}


def _document(
    definition: LoadTestDefinition,
    steps: Iterable[LoadTestStep],
    stages: Iterable[LoadTestStage],
    tags: Iterable[str],
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": VERSION,
        "name": definition.name,
        "description": definition.description,
        "mode": definition.mode,
        "data_set": _data_set_dict(definition),
    }
    document.update({name: getattr(definition, name) for name in LOAD_FIELDS})
    document["target_base_url"] = definition.target_base_url.rstrip("/")
    document["steps"] = [_step_dict(step) for step in steps]
    document["stages"] = [{"duration_s": s.duration_s, "target": s.target} for s in stages]
    document["thresholds"] = {
        name: getattr(definition, field_name) for name, field_name in THRESHOLD_FIELDS.items()
    }
    document["tags"] = sorted(tags)
    return document


def _tags_of(definition: LoadTestDefinition) -> list[str]:
    return [tag.name for tag in definition.tags.all()] if definition.pk else []


def freeze_definition(
    definition: LoadTestDefinition,
    steps: Iterable[LoadTestStep] | None = None,
    stages: Iterable[LoadTestStage] | None = None,
) -> dict[str, Any]:
    """The definition's document with its secrets: what a run keeps, so that later edits never
    rewrite history, and what the engine runs.

    `steps` and `stages` (in order) stand in for the stored ones when given: the admin
    checks a definition as a run would freeze it before anything is saved.
    """
    steps = definition.steps.all() if steps is None else steps
    stages = definition.stages.all() if stages is None else stages
    return _document(definition, steps, stages, _tags_of(definition))


env_name = secrets.env_name


def without_secrets(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` fit to leave the server (secrets.masked_config with placeholders): the
    target URL's user information and every secret header's value become `${NAME}`
    placeholders, and a secret repeated elsewhere (a path) the mask."""
    return secrets.masked_config(document, placeholders=True)


def document_of(definition: LoadTestDefinition) -> dict[str, Any]:
    """The definition's document as exported and downloaded: secrets as placeholders, and the
    values its document wrote with `${NAME}` references exactly as written."""
    return _exported(freeze_definition(definition), definition.written_values)


def _exported(document: Mapping[str, Any], kept: Any) -> dict[str, Any]:
    as_written = _as_written(document, kept)
    return secrets.masked_config(document, placeholders=True, as_written=as_written)


# -- values written with ${NAME} references ----------------------------------------------------


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


def written_values(written: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """What `definition.written_values` keeps of a document as written: each target URL and
    header value written with `${NAME}` references, with the fingerprint of the value it
    became in `stored` (the definition's document as it will be stored)."""
    kept: dict[str, Any] = {}
    url = written.get("target_base_url")
    if isinstance(url, str) and PLACEHOLDER.search(url):
        kept["target_base_url"] = {"text": url, "sha256": _fingerprint(stored["target_base_url"])}
    stored_steps = {step["name"]: step for step in stored.get("steps") or []}
    steps: dict[str, dict[str, Any]] = {}
    for step in written.get("steps") or []:
        stored_headers = stored_steps.get(step.get("name"), {}).get("headers") or {}
        for name, value in (step.get("headers") or {}).items():
            if isinstance(value, str) and PLACEHOLDER.search(value) and name in stored_headers:
                steps.setdefault(step["name"], {})[name] = {
                    "text": value,
                    "sha256": _fingerprint(stored_headers[name]),
                }
    if steps:
        kept["steps"] = steps
    return kept


def _as_written(document: Mapping[str, Any], kept: Any) -> dict[str, Any]:
    """The texts of `kept` (written_values) whose value is still the one they resolved to, in
    the shape secrets.masked_config takes: a value edited since then is shown as itself."""
    kept = kept if isinstance(kept, Mapping) else {}

    def still(entry: Any, value: Any) -> bool:
        return isinstance(entry, Mapping) and entry.get("sha256") == _fingerprint(value)

    as_written: dict[str, Any] = {}
    if still(kept.get("target_base_url"), document.get("target_base_url")):
        as_written["target_base_url"] = kept["target_base_url"]["text"]
    kept_steps = kept.get("steps") if isinstance(kept.get("steps"), Mapping) else {}
    steps: dict[str, dict[str, str]] = {}
    for step in document.get("steps") or []:
        entries = kept_steps.get(step["name"])
        if not isinstance(entries, Mapping):
            continue
        for name, value in (step.get("headers") or {}).items():
            if still(entries.get(name), value):
                steps.setdefault(step["name"], {})[name] = entries[name]["text"]
    if steps:
        as_written["steps"] = steps
    return as_written


# -- old frozen configs ----------------------------------------------------------------------


def upgrade(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's frozen config as a version-1 document. Configs frozen before documents existed
    (no `version`) had the same names, no description, and settings added since missing:
    those take the value they had then (certificates verified, no secret headers)."""
    config = dict(config or {})
    if config.get("version") == VERSION:
        return config
    document: dict[str, Any] = {"version": VERSION, "name": config.get("name", "")}
    document["description"] = config.get("description", "")
    document["mode"], document["data_set"] = Mode.REQUESTS, None
    defaults = {
        "verify_tls": True, "follow_redirects": False, "abort_error_rate_pct": None, "shards": 1,
        "agent_tagging": True,
    }  # fmt: skip
    for name in LOAD_FIELDS:
        document[name] = config.get(name, defaults.get(name, 0))
    document["steps"] = [_upgraded_step(step) for step in config.get("steps") or []]
    document["stages"] = [
        {"duration_s": s["duration_s"], "target": s["target"]} for s in config.get("stages") or []
    ]
    thresholds = config.get("thresholds") or {}
    document["thresholds"] = {name: thresholds.get(name) for name in THRESHOLD_FIELDS}
    document["tags"] = list(config.get("tags") or [])
    return document


def _upgraded_step(step: Mapping[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "headers": {}, "secret_headers": [], "body": None, "weight": 1,
        "expected_statuses": [200], "check_type": "", "check_path": "", "check_value": "",
        "extract": [], "poll": None,
    }  # fmt: skip
    return {name: step.get(name, defaults.get(name)) for name in STEP_FIELDS}


# -- document -> engine ------------------------------------------------------------------------


def engine_config_from(
    document: Mapping[str, Any], data_set: DataSet | None = None, *, rows: bool = False
) -> EngineConfig:
    """The engine's config for a run's document (or an old frozen config). With `data_set`,
    its columns (for checking `{{ row.x }}`) and, with `rows`, its rows and order."""
    document = upgrade(document)
    config = EngineConfig.from_dict(document)
    if data_set is None or not hasattr(config, "data_columns"):
        return config
    data: dict[str, Any] = {"data_columns": tuple(data_set.columns)}
    if rows:
        data["data_rows"] = data_set.rows()
        data["data_order"] = (document.get("data_set") or {}).get("order") or "sequential"
    return dataclasses.replace(config, **data)


def data_set_of(document: Mapping[str, Any]) -> DataSet | None:
    """The data set a document names, None when it names none; raises RunRefused when it
    names one that does not exist."""
    named = upgrade(document).get("data_set")
    if not isinstance(named, Mapping):
        return None
    data_set = DataSet.objects.filter(name=named.get("name")).first()
    if data_set is None:
        raise RunRefused({"data_set.name": [_unknown_data_set(named.get("name"))]})
    return data_set


def _unknown_data_set(name: Any) -> str:
    return (
        f"There is no data set {brief(repr(name))}; upload it in the admin "
        "(Load tests › Data sets)."
    )


def run_engine_config(document: Mapping[str, Any]) -> EngineConfig:
    """What a worker runs: the engine config with the data set's rows, once its file is
    checked to be the one the run was frozen with; raises RunRefused naming the data set."""
    data_set = data_set_of(document)
    frozen = (upgrade(document).get("data_set") or {}).get("sha256")
    if data_set is not None and frozen and data_set.sha256 != frozen:
        raise RunRefused(
            {"data_set": [f"The data set {data_set.name!r} changed since this run was "
                          f"queued (sha256 {frozen[:12]}… then, {data_set.sha256[:12]}… now); "
                          "start a new run to use the new file."]}
        )  # fmt: skip
    return engine_config_from(document, data_set, rows=True)


def config_problems(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Everything wrong with a document by the engine's rules, by field in the document's
    names (`rate_rps`, `steps[2].path`); empty when it can run. The allow-list and the data
    sets are the rules only Django knows."""
    document = upgrade(document)
    problems: dict[str, list[str]] = {}
    try:
        validate_target_url(document["target_base_url"])
    except ValidationError as exc:
        problems["target_base_url"] = list(exc.messages)
    try:
        data_set = data_set_of(document)
    except RunRefused as exc:
        problems.update(exc.message_dict)
        data_set = None
    for name, message in engine_config_from(document, data_set).validate():
        _add(problems, name, [message])
    return problems


def refuse_if_problems(document: Mapping[str, Any]) -> None:
    problems = config_problems(document)
    if problems:
        raise RunRefused(problems)


def _add(problems: dict[str, list[str]], path: str, messages: Iterable[str]) -> None:
    known = problems.setdefault(path, [])
    known.extend(message for message in messages if message not in known)


# -- document -> models ----------------------------------------------------------------------


@dataclass
class Change:
    """What applying a document did (or, in a dry run, would do) to its definition."""

    name: str
    action: str  # created | updated | unchanged | kept (exists; not overwritten)
    fields: list[str] = field(default_factory=list)
    definition: LoadTestDefinition | None = None

    def __str__(self) -> str:
        if self.action == "updated":
            return f"updated {self.name}: {', '.join(self.fields)}"
        if self.action == "kept":
            return f"kept {self.name} (it exists; --if-missing never overwrites)"
        return f"{self.action} {self.name}"


@dataclass
class _Built:
    definition: LoadTestDefinition
    steps: list[LoadTestStep]
    stages: list[LoadTestStage]
    tags: list[str]


def apply_document(
    document: Any,
    definition: LoadTestDefinition | None = None,
    *,
    dry_run: bool = False,
    if_missing: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Change:
    """Create or update (by name, or `definition` when given) the definition `document`
    describes, atomically. Raises DocumentInvalid naming every bad field by its path in the
    document. `dry_run` changes nothing; `if_missing` leaves an existing definition as it is.
    `${NAME}` in a header value comes from `environ` (the process environment by default); a
    secret left out that way keeps its stored value when the definition already has it and
    its target's scheme, host and port are unchanged."""
    problems = shape_problems(document)
    if problems:
        raise DocumentInvalid(problems)
    if definition is None:
        definition = LoadTestDefinition.objects.filter(name=document["name"]).first()
    before = freeze_definition(definition) if definition is not None else None
    as_given = document
    document = _with_environment(document, before, _environment() if environ is None else environ)
    built = _build(document, definition)
    after = _document(built.definition, built.steps, built.stages, built.tags)
    built.definition.written_values = written_values(as_given, after)
    if before is None:
        change = Change(after["name"], "created")
    elif if_missing:
        return Change(after["name"], "kept", definition=definition)
    else:
        changed = differences(before, after)
        # A value now written with a reference (or no longer) changes what an export shows.
        shown_before = _exported(before, definition.written_values)  # type: ignore[union-attr]
        shown_after = _exported(after, built.definition.written_values)
        changed += [p for p in differences(shown_before, shown_after) if p not in changed]
        change = Change(after["name"], "updated" if changed else "unchanged", changed)
    if not dry_run and change.action != "unchanged":
        _save(built)
    change.definition = built.definition if not dry_run else definition
    return change


def shape_problems(document: Any) -> dict[str, list[str]]:
    """What makes `document` no version-1 document at all (kinds of values, unknown names)."""
    if not isinstance(document, Mapping):
        return {"(document)": ["A load-test document is a JSON object."]}
    # Sizes first and alone: every rule below walks each step and stage.
    counts = [len(document.get(key)) if isinstance(document.get(key), list) else 0
              for key in ("steps", "stages")]  # fmt: skip
    problems: dict[str, list[str]] = {}
    for name, message in size_problems(*counts):
        _add(problems, name, [message])
    if problems:
        return problems
    # What no stored text or number may hold (NUL, lone surrogates, Infinity), by path,
    # whatever brought the document here.
    for name, message in jsoninput.value_problems(dict(document)):
        _add(problems, name, [message])
    if problems:
        return problems
    if document.get("version") != VERSION:
        _add(problems, "version", [f"Give the document's version: {VERSION}."])
    if not isinstance(document.get("name"), str) or not document["name"].strip():
        _add(problems, "name", ["Give the load test a name."])
    for name in sorted(set(document) - TOP_FIELDS):
        _add(problems, name, ["Not a field of a load-test document."])
    _list_problems(problems, document, "steps", STEP_FIELDS)
    _list_problems(problems, document, "stages", STAGE_FIELDS)
    _data_set_shape(problems, document.get("data_set"))
    thresholds = document.get("thresholds", {})
    if not isinstance(thresholds, Mapping):
        _add(problems, "thresholds", ['Thresholds are an object, e.g. {"p95_ms": 200}.'])
    else:
        for name in sorted(set(thresholds) - set(THRESHOLD_FIELDS)):
            _add(problems, f"thresholds.{name}", [f"Use {', '.join(THRESHOLD_FIELDS)}."])
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        _add(problems, "tags", ['Tags are a list of names, e.g. ["smoke"].'])
    return problems


def _list_problems(
    problems: dict[str, list[str]], document: Mapping[str, Any], key: str, known: Sequence[str]
) -> None:
    items = document.get(key, [])
    if not isinstance(items, list):
        _add(problems, key, [f"{key} is a list of objects."])
        return
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            _add(problems, f"{key}[{index}]", ["Each item is an object."])
            continue
        for name in sorted(set(item) - set(known)):
            _add(problems, f"{key}[{index}].{name}", ["Not a field of a load-test document."])
    if key == "steps":
        for index, item in enumerate(items):
            statuses = item.get("expected_statuses", [200]) if isinstance(item, Mapping) else []
            whole = all(isinstance(c, int) and not isinstance(c, bool) for c in statuses)
            if not isinstance(statuses, list) or not whole:
                _add(
                    problems,
                    f"steps[{index}].expected_statuses",
                    [
                        "Give a list of status codes, e.g. [200, 201], "
                        f"or [] for any of {DEFAULT_SUCCESS_TEXT}."
                    ],
                )
            if isinstance(item, Mapping):
                _poll_shape(problems, index, item.get("poll"))


def _poll_shape(problems: dict[str, list[str]], index: int, poll: Any) -> None:
    if poll is None:
        return
    where = f"steps[{index}].poll"
    if not isinstance(poll, Mapping):
        _add(problems, where, ['A poll is null or {"until_path": "$.status", "until_value": '
                               '"done", "max_attempts": 20, "interval_s": 0.5}.'])  # fmt: skip
        return
    for name in sorted(set(poll) - set(POLL_FIELDS)):
        _add(problems, f"{where}.{name}", [f"Use {', '.join(POLL_FIELDS)}."])
    if not isinstance(poll.get("until_path"), str) or not poll["until_path"].strip():
        _add(problems, f"{where}.until_path", ["Give the JSON path to poll, e.g. $.status."])
    if not isinstance(poll.get("until_value", ""), str):
        _add(problems, f"{where}.until_value", ['Give the value as text, e.g. "done".'])


def _data_set_shape(problems: dict[str, list[str]], data_set: Any) -> None:
    if data_set is None:
        return
    if not isinstance(data_set, Mapping):
        _add(problems, "data_set", ['A data set is null or {"name": "...", "order": '
                                    '"sequential"}.'])  # fmt: skip
        return
    for name in sorted(set(data_set) - set(DATA_SET_FIELDS)):
        _add(problems, f"data_set.{name}", [f"Use {', '.join(DATA_SET_FIELDS)}."])
    if not isinstance(data_set.get("name"), str) or not data_set["name"]:
        _add(problems, "data_set.name", ["Give the data set's name."])
    if data_set.get("order", "sequential") not in datasets.ORDERS:
        _add(problems, "data_set.order", [f"Use one of {', '.join(datasets.ORDERS)}."])


def _with_environment(
    document: Mapping[str, Any], before: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """`document` with its placeholders resolved from `environ`. A secret the document leaves
    out (an unset placeholder, or the mask an export puts where a secret was repeated) keeps
    its stored value, but only while the target's scheme, host and port stay the same: a
    stored secret is bound to the target it was stored for."""
    document = json.loads(json.dumps(document))
    stored = {step["name"]: step for step in (before or {}).get("steps", [])}
    stored_url = (before or {}).get("target_base_url")
    problems: dict[str, list[str]] = {}
    url = document.get("target_base_url")
    if isinstance(url, str):
        url = document["target_base_url"] = _target_with_environment(
            url, stored_url, environ, problems
        )
    moved = stored_url is not None and not secrets.same_target(stored_url, url)
    masks = _Masks(secrets.secret_values(before or {}), stored_url, url, moved, problems)
    for key, value in document.items():
        if key not in ("target_base_url", "steps"):
            document[key] = masks.restored(value, (before or {}).get(key), key)
    for index, step in enumerate(document.get("steps") or []):
        before_step = stored.get(step.get("name"))
        for key, value in step.items():
            old = (before_step or {}).get(key)
            step[key] = masks.restored(value, old, f"steps[{index}].{key}")
        headers = step.get("headers")
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            if not isinstance(value, str) or not PLACEHOLDER.search(value):
                continue
            resolved, missing = _resolve(value, environ)
            if missing:
                kept = _stored_secret(before_step, name)
                if kept is None or moved:
                    variables = ", ".join(missing)
                    why = (
                        secrets.moved_message(stored_url, url, "its value")
                        if kept is not None
                        else "the document leaves this value out."
                    )
                    where = f"steps[{index}].headers.{name}"
                    _add(problems, where, [f"Set the environment variable {variables}: {why}"])
                    continue
                resolved = kept
            headers[name] = resolved
    if problems:
        raise DocumentInvalid(problems)
    return document


@dataclass
class _Masks:
    """Puts back what an export masked (a secret repeated in a path, a body, a description):
    text equal to its stored text as masked keeps the stored text, on the same target only;
    any other text holding the mask is refused, never stored."""

    values: set[str]
    stored_url: Any
    url: Any
    moved: bool
    problems: dict[str, list[str]]

    def restored(self, value: Any, old: Any, path: str) -> Any:
        if isinstance(value, dict):
            olds = old if isinstance(old, dict) else {}
            return {k: self.restored(v, olds.get(k), f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            olds = old if isinstance(old, list) and len(old) == len(value) else [None] * len(value)
            return [
                self.restored(v, o, f"{path}[{i}]")
                for i, (v, o) in enumerate(zip(value, olds, strict=True))
            ]
        if not isinstance(value, str) or secrets.MASK not in value:
            return value
        unchanged = isinstance(old, str) and secrets.redact(old, self.values) == value
        if unchanged and not self.moved:
            return old
        _add(self.problems, path, [self._why(unchanged)])
        return value

    def _why(self, unchanged: bool) -> str:
        if unchanged:
            return secrets.moved_message(
                self.stored_url, self.url, f"the secret in place of {secrets.MASK}"
            )
        return (
            f"{secrets.MASK} stands for a secret the export left out: type it in its place "
            "(it keeps the stored text only where the text is otherwise unchanged)."
        )


def _target_with_environment(
    url: str, stored_url: Any, environ: Mapping[str, str], problems: dict[str, list[str]]
) -> str:
    """The target URL with its placeholders resolved; user information left out (an unset
    `${TARGET_USERINFO}` or the mask) keeps the stored one for the same target only."""
    userinfo = secrets.url_userinfo(url)
    left_out: list[str] = []
    if userinfo and PLACEHOLDER.fullmatch(userinfo):
        resolved, left_out = _resolve(userinfo, environ)
        url = secrets.with_userinfo(url, "" if left_out else resolved)
    if PLACEHOLDER.search(url):
        url, missing = _resolve(url, environ)
        if missing:
            _add(
                problems, "target_base_url", [f"Set the environment variable {', '.join(missing)}."]
            )
            return url
    if left_out:
        stored_userinfo = secrets.url_userinfo(stored_url)
        if stored_userinfo and secrets.same_target(stored_url, url):
            return secrets.with_userinfo(url, stored_userinfo)
        why = (
            secrets.moved_message(stored_url, url, "the user and password")
            if stored_userinfo
            else "the document leaves the user and password out."
        )
        _add(
            problems,
            "target_base_url",
            [f"Set the environment variable {', '.join(left_out)}: {why}"],
        )
        return url
    url, problem = secrets.restore_masked_url(url, stored_url)
    if problem:
        _add(problems, "target_base_url", [problem])
    return url


def _environment() -> dict[str, str]:
    """The process environment over the settings a placeholder may read
    (LOADTEST_PLACEHOLDER_SETTINGS), so `${EMISSIONS_API_TOKEN}` finds the token `make run`
    generated into var/ without it ever being printed or exported."""
    values = {
        name: value
        for name in settings.LOADTEST_PLACEHOLDER_SETTINGS
        if isinstance(value := getattr(settings, name, None), str) and value
    }
    return {**values, **os.environ}


def _resolve(value: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.groups()
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    return PLACEHOLDER.sub(substitute, value), missing


def _stored_secret(step: Mapping[str, Any] | None, header: str) -> str | None:
    if not step:
        return None
    names = secrets.secret_names(step.get("secret_headers") or ())
    for name, value in (step.get("headers") or {}).items():
        if name.lower() == header.lower() and name.lower() in names:
            return value
    return None


def _model_default(model: type, name: str) -> Any:
    return model._meta.get_field(name).get_default()


def _build(document: Mapping[str, Any], existing: LoadTestDefinition | None) -> _Built:
    """Unsaved model instances for `document`, checked by the models' and the engine's rules."""
    # A fresh copy: a dry run or a refused document must leave the caller's instance as it was.
    definition = (
        LoadTestDefinition.objects.get(pk=existing.pk) if existing else LoadTestDefinition()
    )
    definition.name = document["name"]
    definition.description = document.get("description") or ""
    definition.mode = document.get("mode") or Mode.REQUESTS
    problems: dict[str, list[str]] = {}
    _set_data_set(definition, document.get("data_set"), problems)
    for name in LOAD_FIELDS:
        definition_value = document.get(name, _model_default(LoadTestDefinition, name))
        setattr(definition, name, definition_value)
    thresholds = document.get("thresholds") or {}
    for name, field_name in THRESHOLD_FIELDS.items():
        setattr(definition, field_name, thresholds.get(name))
    _clean(definition, problems, "", exclude=())
    steps = [_step(definition, index, item, problems) for index, item in _items(document, "steps")]
    stages = [
        LoadTestStage(order=index, duration_s=item.get("duration_s"), target=item.get("target"))
        for index, item in _items(document, "stages")
    ]
    for index, stage in enumerate(stages):
        _clean(stage, problems, f"stages[{index}].", exclude=("definition",))
    tags = list(dict.fromkeys(document.get("tags") or []))
    for index, tag in enumerate(tags):
        try:
            Tag._meta.get_field("name").clean(tag, None)
        except ValidationError as exc:
            _add(problems, f"tags[{index}]", exc.messages)
    # The engine's rules too, even when a field broke a model rule: a file's every problem at
    # once. A value of the wrong kind may stop them; its model error says so already.
    try:
        engine_problems = config_problems(_document(definition, steps, stages, tags))
    except (ValidationError, TypeError, ValueError, AttributeError):
        engine_problems = {}
    for path, messages in engine_problems.items():
        _add(problems, path, messages)
    if problems:
        raise DocumentInvalid(problems)
    return _Built(definition, steps, stages, tags)


def _set_data_set(
    definition: LoadTestDefinition, named: Any, problems: dict[str, list[str]]
) -> None:
    definition.data_set = None
    definition.data_order = "sequential"
    if not isinstance(named, Mapping):
        return
    definition.data_order = named.get("order") or "sequential"
    data_set = DataSet.objects.filter(name=named.get("name")).first()
    if data_set is None:
        _add(problems, "data_set.name", [_unknown_data_set(named.get("name"))])
    definition.data_set = data_set


def _items(document: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    return list(enumerate(document.get(key) or []))


def _step(
    definition: LoadTestDefinition, index: int, item: Mapping[str, Any], problems: dict
) -> LoadTestStep:
    special = ("expected_statuses", "poll")
    values = {name: item[name] for name in STEP_FIELDS if name in item and name not in special}
    values["body"] = values.get("body") or ""
    values["extract"] = values.get("extract") or []
    for name in ("check_type", "check_path", "check_value"):
        values[name] = values.get(name) or ""
    absent = STATUSES_WHEN_ABSENT.get(definition.mode, STATUSES_WHEN_ABSENT[REQUESTS])
    statuses = item.get("expected_statuses", absent)
    values["expected_statuses"] = ",".join(str(code) for code in statuses)
    poll = item.get("poll") if isinstance(item.get("poll"), Mapping) else {}
    for name, field_name in POLL_STEP_FIELDS.items():
        if name in poll:
            values[field_name] = poll[name]
    values["poll_until_value"] = str(values.get("poll_until_value") or "")
    step = LoadTestStep(order=index, **values)
    _clean(step, problems, f"steps[{index}].", exclude=("definition",))
    return step


def _clean(instance: Any, problems: dict, prefix: str, *, exclude: Sequence[str]) -> None:
    # Fields first: a model's clean() compares values and needs them of the right kind.
    try:
        instance.clean_fields(exclude=list(exclude))
        instance.full_clean(exclude=list(exclude), validate_unique=not exclude)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            whole = prefix.rstrip(".") or "name"
            _add(problems, whole if name == "__all__" else prefix + _document_path(name), messages)


def _document_path(field_name: str) -> str:
    for name, threshold_field in THRESHOLD_FIELDS.items():
        if field_name == threshold_field:
            return f"thresholds.{name}"
    for name, step_field in POLL_STEP_FIELDS.items():
        if field_name == step_field:
            return f"poll.{name}"
    return {"data_set": "data_set.name", "data_order": "data_set.order"}.get(field_name, field_name)


def _save(built: _Built) -> None:
    with transaction.atomic():
        definition = built.definition
        definition.save()
        definition.steps.all().delete()
        definition.stages.all().delete()
        for step in built.steps:
            step.definition = definition
        for stage in built.stages:
            stage.definition = definition
        LoadTestStep.objects.bulk_create(built.steps)
        LoadTestStage.objects.bulk_create(built.stages)
        definition.tags.set([Tag.objects.get_or_create(name=name)[0] for name in built.tags])


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """The paths at which two documents differ (`rate_rps`, `steps[1].path`, `steps`)."""
    if isinstance(before, dict) and isinstance(after, dict):
        changed: list[str] = []
        for key in list(dict.fromkeys([*before, *after])):
            changed += differences(
                before.get(key), after.get(key), f"{path}.{key}" if path else key
            )
        return changed
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        changed = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            changed += differences(old, new, f"{path}[{index}]")
        return changed
    return [] if before == after else [path]


# -- files ---------------------------------------------------------------------------------------


@dataclass
class FileResult:
    path: str
    changes: list[Change] = field(default_factory=list)
    error: str = ""


class _RollBack(Exception):
    pass


def read_documents(path: Path) -> list[Any]:
    """The documents in a file: one JSON document, or a JSON list of them. Raises
    jsoninput.JsonInputInvalid for a file over MAX_DOCUMENT_BYTES (told before reading it),
    too deep, or holding what no document may (Infinity, NUL, lone surrogates)."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise jsoninput.JsonInputInvalid(
            [("(file)", jsoninput.size_message(size, MAX_DOCUMENT_BYTES))]
        )
    with path.open("rb") as handle:  # a pipe has no size: read no more than the limit allows
        data = jsoninput.parse(handle.read(MAX_DOCUMENT_BYTES + 1), root="(file)")
    return data if isinstance(data, list) else [data]


def import_file(
    path: Path,
    *,
    dry_run: bool = False,
    if_missing: bool = False,
    environ: Mapping[str, str] | None = None,
) -> FileResult:
    """Apply every document in one file, all or none: one bad document leaves every
    definition as it was before this file (files imported earlier stay imported)."""
    result = FileResult(str(path))
    try:
        documents = read_documents(path)
    except jsoninput.JsonInputInvalid as exc:
        result.error = f"refused: {exc}"
        return result
    except (OSError, ValueError) as exc:
        result.error = f"cannot read it: {exc}"
        return result
    try:
        with transaction.atomic():
            for index, document in enumerate(documents):
                try:
                    change = apply_document(
                        document, dry_run=dry_run, if_missing=if_missing, environ=environ
                    )
                except DocumentInvalid as exc:
                    where = f"document {index + 1}" if len(documents) > 1 else "document"
                    name = document.get("name") if isinstance(document, Mapping) else None
                    label = f"{where} ({name})" if isinstance(name, str) else where
                    result.error = f"{label}: {problems_text(exc)}"
                    raise _RollBack from exc
                result.changes.append(change)
    except _RollBack:
        result.changes = []
    return result
