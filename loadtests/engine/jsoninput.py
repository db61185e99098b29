"""The one reader of JSON that comes from outside: load-test documents (files, the engine's
--document), API bodies.

Python's json module accepts what nothing downstream can hold: `Infinity`, `NaN` and `1e400`
(a float that overflows to inf, then an OverflowError in int()), NUL characters and lone
surrogates (`\\ud800`), which PostgreSQL refuses in text and jsonb, and any nesting depth (a
5,000-deep array is a RecursionError inside json.loads). `parse` refuses all of them with a
problem naming the field by its path (`steps[2].name`) and the rule. The size and the depth
are checked before json.loads runs, by a scan that never recurses.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from loadtests.engine.config import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH, brief, capped

ROOT = "(document)"
NUL_RULE = "Text may not contain NUL characters (\\u0000)."
SURROGATE_RULE = "Text may not contain a lone surrogate (e.g. \\ud800); send valid UTF-8 text."
NUMBER_RULE = "Numbers must be finite: no Infinity, NaN or values beyond ±1.8e308."
# A JSON string (escapes included), so that brackets inside strings are not counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class JsonInputInvalid(ValueError):
    """JSON that may not be used; `problems` holds (field path, message) pairs, capped."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = capped(problems)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.problems))


class _NonFinite:
    """Where json.loads met a non-finite number: found, with its path, by the walk."""


_NON_FINITE = _NonFinite()


def parse(
    data: bytes | str,
    *,
    root: str = ROOT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """The value of the JSON text `data`, or JsonInputInvalid naming each bad field.

    `root` names the whole text in problems about it (its size, depth or syntax).
    """
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > max_bytes:
        raise JsonInputInvalid([(root, size_message(size, max_bytes))])
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"Send UTF-8 text (byte {exc.start + 1} is not)."
            raise JsonInputInvalid([(root, problem)]) from None
    depth = nesting_depth(data, max_depth)
    if depth > max_depth:
        raise JsonInputInvalid(
            [(root, f"JSON may nest at most {max_depth} levels deep (MAX_JSON_DEPTH).")]
        )
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float)
    except ValueError as exc:  # includes integers too long for int()
        raise JsonInputInvalid([(root, f"Send valid JSON ({brief(str(exc), 120)}).")]) from None
    problems = value_problems(value)
    if problems:
        raise JsonInputInvalid(problems)
    return value


def size_message(size: int, max_bytes: int) -> str:
    return f"The JSON is {size} bytes; at most {max_bytes} bytes are accepted (MAX_DOCUMENT_BYTES)."


def nesting_depth(text: str, stop_above: int) -> int:
    """How deep the arrays and objects of `text` nest (brackets inside strings do not
    count), without recursing; the count stops once it passes `stop_above`."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def _constant(name: str) -> _NonFinite:
    return _NON_FINITE


def _float(text: str) -> float | _NonFinite:
    number = float(text)
    return number if math.isfinite(number) else _NON_FINITE


def value_problems(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Non-finite numbers, NUL characters and lone surrogates anywhere in an already parsed
    `value` (keys too), by path. `value` nests at most MAX_JSON_DEPTH deep (parse checks it)
    before this recursion runs; a value built in Python is as deep as its builder made it."""
    problems: list[tuple[str, str]] = []
    if value is _NON_FINITE or (isinstance(value, float) and not math.isfinite(value)):
        problems.append((path or ROOT, NUMBER_RULE))
    elif isinstance(value, str):
        problem = text_problem(value)
        if problem:
            problems.append((path or ROOT, problem))
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{shown_key(key)}" if path else shown_key(key)
            problem = text_problem(key) if isinstance(key, str) else None
            if problem:
                problems.append((where, f"In a name: {problem}"))
            problems += value_problems(item, where)
            if len(problems) > MAX_PROBLEMS_WALKED:
                break
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += value_problems(item, f"{path}[{index}]")
            if len(problems) > MAX_PROBLEMS_WALKED:
                break
    return problems


# The walk stops collecting past this: the error shows fewer anyway.
MAX_PROBLEMS_WALKED = 100


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (NUL, lone surrogate), or None."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    return NUL_RULE if found.group() == "\x00" else SURROGATE_RULE


def shown_key(key: object, limit: int = 60) -> str:
    """A key as a problem's path shows it: unprintable characters escaped, long ones cut."""
    text = str(key).encode("unicode_escape", "backslashreplace").decode("ascii")
    return brief(text, limit)
