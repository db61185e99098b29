"""The admin's *Validate* and *Try once* of a saved definition: every template compiled by the
engine's rules and reported by step, and one iteration run against the target with each
request and response shown (secret values masked), as k6's printing or Locust's `-i 1` do."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loadtests import documents, secrets
from loadtests.models import LoadTestDefinition
from loadtests.validators import host_is_allowed

_STEP_FIELD = re.compile(r"steps\[(?P<index>\d+)\](?:\.(?P<field>.+))?")
# What the page shows of a body; the engine already cuts at 2 KB.
SHOWN_BODY_CHARS = 2048


@dataclass
class Problems:
    """Problems of one place: the definition itself (`step` None) or one step."""

    where: str
    step: str | None
    messages: list[str] = field(default_factory=list)


def validation_report(definition: LoadTestDefinition) -> list[Problems]:
    """The saved definition checked as a run would freeze it (every template compiled by
    EngineConfig.validate), grouped: the definition's own fields first, then step by step."""
    document = documents.freeze_definition(definition)
    names = [step["name"] for step in document["steps"]]
    grouped: dict[str, Problems] = {}
    for path, messages in documents.config_problems(document).items():
        match = _STEP_FIELD.fullmatch(path)
        if match and int(match["index"]) < len(names):
            name = names[int(match["index"])]
            key = f"step {match['index']}"
            entry = grouped.setdefault(key, Problems(f"step {name!r}", name))
            entry.messages += [f"{match['field'] or 'step'}: {text}" for text in messages]
        else:
            entry = grouped.setdefault("", Problems("definition", None))
            entry.messages += [f"{path}: {text}" for text in messages]
    ordered = sorted(grouped.items(), key=lambda item: _order(item[0]))
    return [problems for _, problems in ordered]


def _order(key: str) -> int:
    return -1 if not key else int(key.split()[1])


class TryRefused(Exception):
    """Try once cannot start; the message says why."""


def try_once(definition: LoadTestDefinition) -> list[dict[str, Any]]:
    """Run one iteration of the saved definition (user 1, iteration 1, the data set's first
    row) and return each request and response as the engine reports them, fit to show:
    secret header values masked, and any secret repeated elsewhere (a body, a URL) too."""
    document = documents.freeze_definition(definition)
    if not host_is_allowed(document["target_base_url"]):
        raise TryRefused("The target host is not in LOADTEST_ALLOWED_HOSTS.")
    problems = documents.config_problems(document)
    if problems:
        raise TryRefused(documents.problems_text(documents.RunRefused(problems)))
    try:
        config = documents.run_engine_config(document)
    except documents.RunRefused as exc:
        raise TryRefused(documents.problems_text(exc)) from exc
    from loadtests.engine import flow  # the engine's flow mode; imported where it is used

    exchanges = flow.try_once(config, timeout_s=float(document["timeout_s"]))
    return [_shown(exchange, document) for exchange in exchanges]


def _shown(exchange: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    steps = {step["name"]: step for step in document["steps"]}
    secret = (steps.get(exchange.get("step")) or {}).get("secret_headers") or ()
    shown = dict(exchange)
    shown["request_headers"] = secrets.masked_headers(exchange.get("request_headers"), secret)
    # A response may set or echo a credential too (a session cookie is one).
    shown["response_headers"] = secrets.masked_headers(exchange.get("response_headers"))
    for name in ("request_body", "body"):
        shown[name] = (exchange.get(name) or "")[:SHOWN_BODY_CHARS]
    values = secrets.secret_values(document)
    return secrets.redacted_errors(shown, values) if values else shown
