"""Secret step headers: which ones are secret, and what everything but the engine shows.

Only the engine sees a secret's real value. Every page, export, JSON document, form and log
line goes through `masked_config` (a frozen run config), `masked_headers` (a step's headers)
or `redact` (free text that may repeat a value, such as an error sample of a target that
echoes its request). Pure: no Django, so it is tested with plain data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "••••"
# Credentials by definition; a step lists any other secret header in `secret_headers`.
ALWAYS_SECRET = frozenset({"authorization", "cookie", "proxy-authorization"})
# Shorter values are not searched for in free text: masking every "1" would garble messages,
# and a value that short protects nothing anyway. Header values are masked whatever their size.
MIN_REDACTED_CHARS = 4


def secret_names(extra: Iterable[Any] = ()) -> frozenset[str]:
    """The lower-cased names of the secret headers: the usual credentials plus `extra`."""
    return ALWAYS_SECRET | {name.lower() for name in extra if isinstance(name, str)}


def masked_headers(headers: Mapping[str, Any] | None, secret: Iterable[Any] = ()) -> dict[str, Any]:
    """A copy of `headers` with the value of every secret header (see `secret_names`) masked."""
    names = secret_names(secret)
    return {
        name: MASK if name.lower() in names else value for name, value in (headers or {}).items()
    }


def _steps(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = config.get("steps") if isinstance(config, Mapping) else None
    return [step for step in steps or [] if isinstance(step, Mapping)]


def secret_values(config: Mapping[str, Any]) -> set[str]:
    """The secret header values of a frozen config, and the credential after an auth scheme
    ("Bearer abc" -> also "abc"), longest first when redacting."""
    values: set[str] = set()
    for step in _steps(config):
        names = secret_names(step.get("secret_headers") or ())
        for name, value in (step.get("headers") or {}).items():
            if not isinstance(value, str) or name.lower() not in names:
                continue
            values.add(value.strip())
            scheme, _, credential = value.strip().partition(" ")
            if scheme and credential:
                values.add(credential.strip())
    return {value for value in values if len(value) >= MIN_REDACTED_CHARS}


def redact(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of a secret value replaced by the mask."""
    for value in sorted(values, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, MASK)
    return text


def _redact_all(value: Any, values: set[str]) -> Any:
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, list):
        return [_redact_all(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _redact_all(item, values) for key, item in value.items()}
    return value


def masked_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a frozen run config fit to show: each step's secret headers masked, and a
    secret repeated anywhere else in it (a check value, a body) masked too."""
    shown = copy.deepcopy(dict(config or {}))
    values = secret_values(shown)
    for step in _steps(shown):
        step["headers"] = masked_headers(step.get("headers"), step.get("secret_headers") or ())  # type: ignore[index]
    return _redact_all(shown, values) if values else shown


def redact_config_text(text: str, config: Mapping[str, Any] | None) -> str:
    """Free text about a run (a status reason, an error sample) with its secrets masked."""
    return redact(text, secret_values(config or {})) if text else text


def redacted_errors(errors_by_class: Mapping[str, Any], values: set[str]) -> dict[str, Any]:
    """A run's errors by class with the secrets masked in their sample messages."""
    return _redact_all(dict(errors_by_class), values) if values else dict(errors_by_class)


def restore_masked(
    submitted: Mapping[str, Any], stored: Mapping[str, Any], stored_secret: Iterable[Any] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Headers from a form that showed `stored` masked: a value left as the mask keeps the
    stored value of that header (names compared case-insensitively). Returns the headers to
    save and the names whose mask stands for no stored secret."""
    shown_secret = secret_names(stored_secret)
    stored_by_name = {
        name.lower(): value for name, value in stored.items() if name.lower() in shown_secret
    }
    headers: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in submitted.items():
        if value == MASK:
            if name.lower() in stored_by_name:
                headers[name] = stored_by_name[name.lower()]
                continue
            unknown.append(name)
        headers[name] = value
    return headers, unknown


def secret_header_problems(secret: Any, headers: Any) -> list[str]:
    """Why a step's `secret_headers` is wrong: it must be a list of the names of headers the
    step sends (case-insensitive), so that a misspelt name cannot leave a secret showing."""
    if not isinstance(secret, list) or not all(isinstance(name, str) for name in secret):
        return ['Give a list of header names, e.g. ["X-Api-Key"].']
    sent = {name.lower() for name in headers} if isinstance(headers, Mapping) else set()
    return [
        f"{name!r} is not one of this step's headers; name a header it sends."
        for name in secret
        if name.lower() not in sent
    ]
