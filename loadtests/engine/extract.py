"""Taking values out of responses: JSON paths, headers, regular expressions and cookies.

Pure functions of a response's parts (status, headers as (name, value) pairs, body bytes),
so that flows, polls and `try_once` share them and tests need no server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

_JSON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_JSON_INDEX = re.compile(r"\[(-?\d+)\]")
_JSON_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")
MISSING = object()
# A header extraction with a regex: `Location ~ ^/(.*)`.
HEADER_REGEX = re.compile(r"\s*(\S+)\s+~\s+(.+)", re.DOTALL)
# How an extracted JSON value becomes a variable's text: strings as they are, the rest as JSON.
Headers = list[tuple[str, str]]


class ExtractionFailed(Exception):
    """Why an extraction found nothing; the message names what was looked for."""


def parse_json_path(expression: str) -> tuple[str | int, ...]:
    """The keys of `$.a.b`, `$.items[0].id`, `$['key']` (and a bare `a.b`); raises ValueError
    naming the position of the first thing it cannot read."""
    text = expression.strip()
    if not text:
        raise ValueError("give a JSON path such as $.id or $.items[0].id")
    pos = 0
    if text.startswith("$"):
        pos = 1
    elif not text.startswith("["):
        text = "." + text  # tolerate `data.id` as the checks' dotted paths are written
    keys: list[str | int] = []
    while pos < len(text):
        char = text[pos]
        if char == ".":
            found = _JSON_NAME.match(text, pos + 1)
            if found is None:
                raise ValueError(f"expected a field name at character {pos + 2} of {expression!r}")
            keys.append(found.group())
            pos = found.end()
        elif char == "[":
            index = _JSON_INDEX.match(text, pos)
            quoted = _JSON_QUOTED.match(text, pos)
            if index is not None:
                keys.append(int(index.group(1)))
                pos = index.end()
            elif quoted is not None:
                raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
                keys.append(re.sub(r"\\(.)", r"\1", raw))
                pos = quoted.end()
            else:
                raise ValueError(
                    f"expected [number] or ['name'] at character {pos + 1} of {expression!r}"
                )
        else:
            raise ValueError(f"unexpected {char!r} at character {pos + 1} of {expression!r}")
    return tuple(keys)


def json_lookup(document: Any, keys: tuple[str | int, ...]) -> Any:
    """The value at `keys`, or MISSING."""
    value = document
    for key in keys:
        if isinstance(key, int):
            if not isinstance(value, list) or not -len(value) <= key < len(value):
                return MISSING
            value = value[key]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return MISSING
    return value


def as_text(value: Any) -> str:
    """A JSON value as a variable holds it: strings as they are, anything else as JSON."""
    if type(value) is str:
        return value
    return str(value) if type(value) is int else json.dumps(value)


def regex_problem(expression: str) -> str | None:
    """Why `expression` cannot be an extraction regex (it must have exactly one group)."""
    try:
        pattern = re.compile(expression)
    except re.error as exc:
        return f"The regular expression does not compile: {exc}."
    if pattern.groups != 1:
        return f"The regular expression needs exactly one group (it has {pattern.groups})."
    return None


Extractor = Callable[[Headers, bytes, dict[str, str]], str]


def make_extractor(source: str, expression: str) -> Extractor:
    """A function (response headers, body, the user's cookie jar) -> the value, raising
    ExtractionFailed. The expression must have validated."""
    if source == "json":
        keys = parse_json_path(expression)

        def from_json(headers: Headers, body: bytes, jar: dict[str, str]) -> str:
            try:
                # str, not bytes: json.loads would detect the encoding of bytes first.
                document = json.loads(body.decode("utf-8"))
            except (ValueError, RecursionError) as exc:  # a deep response is no value either
                raise ExtractionFailed(f"the body is not JSON (wanted {expression})") from exc
            value = json_lookup(document, keys)
            if value is MISSING:
                raise ExtractionFailed(f"{expression} is missing")
            return as_text(value)

        return from_json
    if source == "header":
        header, regex = split_header_expression(expression)
        wanted = header.lower()
        within = re.compile(regex) if regex is not None else None

        def from_header(headers: Headers, body: bytes, jar: dict[str, str]) -> str:
            for name, value in headers:
                if name.lower() == wanted:
                    if within is None:
                        return value
                    found = within.search(value)
                    if found is None or found.group(1) is None:
                        raise ExtractionFailed(f"{regex} does not match the {header} header")
                    return found.group(1)
            raise ExtractionFailed(f"no {header} header in the response")

        return from_header
    if source == "regex":
        pattern = re.compile(expression)

        def from_regex(headers: Headers, body: bytes, jar: dict[str, str]) -> str:
            found = pattern.search(body.decode("utf-8", "replace"))
            if found is None or found.group(1) is None:
                raise ExtractionFailed(f"{expression} does not match the body")
            return found.group(1)

        return from_regex
    name = expression.strip()

    def from_cookie(headers: Headers, body: bytes, jar: dict[str, str]) -> str:
        for header, value in headers:
            if header.lower() == "set-cookie":
                cookie = parse_set_cookie(value)
                if cookie is not None and cookie[0] == name and cookie[1] is not None:
                    return cookie[1]
        if name in jar:
            return jar[name]
        raise ExtractionFailed(f"no cookie {name} in the response or the session")

    return from_cookie


def split_header_expression(expression: str) -> tuple[str, str | None]:
    """(header name, regex or None) of a header extraction: `Location` takes the whole value,
    `Location ~ ^/(.*)` the regex's one group in it (a redirect's path without its first /,
    which a step's path, starting with /, can then hold)."""
    found = HEADER_REGEX.fullmatch(expression)
    if found is None:
        return expression.strip(), None
    return found.group(1), found.group(2)


def parse_set_cookie(header: str) -> tuple[str, str | None] | None:
    """(name, value) of a Set-Cookie header, value None when it deletes the cookie (Max-Age
    0 or less, or Expires in the past); None when it has no name."""
    first, *attributes = header.split(";")
    name, sep, value = first.partition("=")
    name = name.strip()
    if not sep or not name:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    for attribute in attributes:
        key, _, setting = attribute.partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                if int(setting.strip()) <= 0:
                    return name, None
            except ValueError:
                continue
        elif key == "expires":
            try:
                if parsedate_to_datetime(setting.strip()).timestamp() < time.time():
                    return name, None
            except (TypeError, ValueError):
                continue
    return name, value


def update_jar(jar: dict[str, str], headers: Headers) -> None:
    """Apply a response's Set-Cookie headers to a user's jar (one origin: no domain or path
    matching needed)."""
    for name, value in headers:
        if len(name) == 10 and name.lower() == "set-cookie":
            cookie = parse_set_cookie(value)
            if cookie is None:
                continue
            if cookie[1] is None:
                jar.pop(cookie[0], None)
            else:
                jar[cookie[0]] = cookie[1]


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())
