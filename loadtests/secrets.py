"""Secrets of a load test: which values are secret, and what everything but the engine shows.

The secrets are each step's secret headers and the user information of the target's URL
(`http://user:password@host`). Only the engine sees their real values. Every page, export,
JSON document and API answer about a definition or a run goes through `masked_config` (with
`placeholders=True` for a document that leaves the server, and the values it wrote with
`${NAME}` references back as written); a form shows `masked_headers`
(a step's headers) or `masked_url`, and free text that may repeat a value (an error sample of
a target that echoes its request) goes through `redact`. A stored secret is bound to the
target it was stored for: `same_target` tells when a mask may keep it. Pure: no Django, so
it is tested with plain data.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "••••"
# Credentials by definition; a step lists any other secret header in `secret_headers`.
ALWAYS_SECRET = frozenset({"authorization", "cookie", "proxy-authorization"})
# Shorter values are not searched for in free text: masking every "1" would garble messages,
# and a value that short protects nothing anyway. Header values are masked whatever their size.
MIN_REDACTED_CHARS = 4
# k6 style: "${API_TOKEN}" in a header value or the target's URL is read from the environment
# at import; "${TARGET_PORT:-8001}" gives a default for an unset variable, as shells do.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# The variable an exported target URL's user information is read from.
USERINFO_VARIABLE = "TARGET_USERINFO"
DEFAULT_PORTS = {"http": 80, "https": 443}


def env_name(header: str) -> str:
    """The environment variable an exported secret header is read from: X-Api-Key -> X_API_KEY."""
    return re.sub(r"[^A-Za-z0-9]", "_", header).upper()


def _authority(url: str) -> tuple[str, str, str]:
    # By hand rather than urlsplit: a placeholder or the mask in the user information must
    # survive, and a URL too broken for urlsplit must still not show its password.
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, "", ""
    end = min([rest.index(c) for c in "/?#" if c in rest] or [len(rest)])
    return scheme + separator, rest[:end], rest[end:]


def url_userinfo(url: Any) -> str:
    """The user information of a URL (`user:password` in `http://user:password@host`), or ""."""
    if not isinstance(url, str):
        return ""
    userinfo, at, _ = _authority(url)[1].rpartition("@")
    return userinfo if at else ""


def with_userinfo(url: str, userinfo: str) -> str:
    """`url` with its user information replaced by `userinfo` (removed when it is "")."""
    start, authority, rest = _authority(url)
    host = authority.rpartition("@")[2]
    return start + (f"{userinfo}@" if userinfo else "") + host + rest


def masked_url(url: Any) -> Any:
    """A URL fit to show: its user information masked."""
    return with_userinfo(url, MASK) if url_userinfo(url) else url


def target_of(url: Any) -> tuple[str, str, int | None] | None:
    """Where a URL sends requests: (scheme, host, port), or None for no URL."""
    if not isinstance(url, str):
        return None
    start, authority, _ = _authority(url)
    try:
        parts = urlsplit(start + authority.rpartition("@")[2])
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def same_target(stored_url: Any, new_url: Any) -> bool:
    """Whether a stored secret may follow an edit of its target's URL: only to the same
    scheme, host and port. A mask or a placeholder keeps a stored secret only then, so that
    whoever may edit a definition cannot point it at a server of theirs to read its secrets."""
    stored = target_of(stored_url)
    return stored is not None and stored == target_of(new_url)


def shown_target(url: Any) -> str:
    """The target of a URL as messages name it (no user information, no path)."""
    found = target_of(url)
    if found is None:
        return "(no URL)"
    scheme, host, port = found
    return f"{scheme}://{host}" + (f":{port}" if port != DEFAULT_PORTS.get(scheme) else "")


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


def userinfo_values(url: Any) -> set[str]:
    """The secrets of a URL's user information: all of it and its password, as written and
    percent-decoded (a client may print either)."""
    userinfo = url_userinfo(url)
    if not userinfo or userinfo == MASK or PLACEHOLDER.fullmatch(userinfo):
        return set()
    password = userinfo.partition(":")[2]
    return {text for value in (userinfo, password) for text in (value, unquote(value)) if text}


def secret_values(config: Mapping[str, Any]) -> set[str]:
    """The secret values of a frozen config: its secret header values, the credential after
    an auth scheme ("Bearer abc" -> also "abc") and the target URL's user information."""
    values: set[str] = set()
    if isinstance(config, Mapping):
        values |= userinfo_values(config.get("target_base_url"))
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


def masked_config(
    config: Mapping[str, Any] | None,
    *,
    placeholders: bool = False,
    as_written: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of a frozen run config or a document fit to show: the target URL's user
    information and each step's secret headers masked, and a secret repeated anywhere else in
    it (a path, a check value, a body) masked too. The one way a definition or a run leaves
    the engine: pages, downloads, the API, the admin and the CLI all show this.

    With `placeholders` (a document that leaves the server: export, download, API), the user
    information and the secret headers become `${NAME}` placeholders instead (kept as they are
    when they are one already), so the file can go into git and the values come from the
    environment at import, as k6 users pass secrets.

    `as_written` ({"target_base_url": text, "steps": {step name: {header: text}}}) holds
    values a document wrote with `${NAME}` references ("Bearer ${API_TOKEN}"); with
    `placeholders` they are shown exactly as written, since they hold references, not
    secrets. Only a secret typed as a literal value becomes a placeholder."""
    shown = copy.deepcopy(dict(config or {}))
    values = secret_values(shown)
    written = as_written if placeholders and as_written else {}
    if isinstance(written.get("target_base_url"), str):
        shown["target_base_url"] = written["target_base_url"]
    userinfo = url_userinfo(shown.get("target_base_url"))
    if userinfo:
        hidden = _hidden(USERINFO_VARIABLE, userinfo, placeholders)
        shown["target_base_url"] = with_userinfo(shown["target_base_url"], hidden)
    written_steps = written.get("steps") or {}
    for step in _steps(shown):
        names = secret_names(step.get("secret_headers") or ())
        kept = written_steps.get(step.get("name")) or {}
        step["headers"] = {  # type: ignore[index]
            name: _shown_header(name, value, names, kept.get(name), placeholders)
            for name, value in (step.get("headers") or {}).items()
        }
    return _redact_all(shown, values) if values else shown


def _shown_header(
    name: str, value: Any, names: frozenset[str], written: Any, placeholders: bool
) -> Any:
    if isinstance(written, str):
        return written
    return _hidden(env_name(name), value, placeholders) if name.lower() in names else value


def _hidden(variable: str, value: Any, placeholders: bool) -> str:
    if not placeholders:
        return MASK
    if isinstance(value, str) and PLACEHOLDER.fullmatch(value):
        return value
    return f"${{{variable}}}"


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


def moved_message(stored_url: Any, new_url: Any, what: str) -> str:
    """Why a mask or a placeholder cannot keep a stored secret: its target changed."""
    return (
        f"The target changed from {shown_target(stored_url)} to {shown_target(new_url)}: "
        f"type {what} again; a stored secret is kept only for the target it was stored for."
    )


def restore_masked_url(submitted: Any, stored: Any) -> tuple[Any, str | None]:
    """A target URL from a form that showed `stored` through `masked_url`: `••••@` left as it
    was keeps the stored user information, for the same scheme, host and port only. Returns
    the URL to save and, when the mask cannot stand, why."""
    if not isinstance(submitted, str) or MASK not in submitted:
        return submitted, None
    if url_userinfo(submitted) != MASK:
        return submitted, (
            f"{MASK} stands only for the stored user and password, alone before the @: "
            "type the URL without it elsewhere."
        )
    kept = url_userinfo(stored)
    if not kept:
        return submitted, (
            f"{MASK}@ stands for no stored user and password: type them (user:password@) "
            f"or remove {MASK}@."
        )
    if not same_target(stored, submitted):
        return submitted, moved_message(stored, submitted, "the user and password")
    return with_userinfo(submitted, kept), None
