"""`{{ ... }}` templates in step paths, header values and bodies: compiled once, rendered fast.

No eval and no Jinja: a template is parsed once into literal chunks and small render
functions, so rendering is a join. What may appear between the braces:

  {{ name }}                      a variable extracted by an earlier step of the iteration
  {{ iteration }}  {{ user }}     1-based iteration (per virtual user) and virtual user number
  {{ row.column }}                the current data-set row's value in `column`
  {{ random_int(1, 100) }}        a whole number between the bounds, both included
  {{ random_choice(a, "b c") }}   one of the arguments (bare words or quoted strings)
  {{ uuid() }}  {{ now_iso() }}   a random UUID; the current UTC time in ISO 8601

A mistake raises TemplateError with the 1-based character position in the text, so that a
form can say "unknown variable 'batchid' at character 18".
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

BUILTIN_VARIABLES = ("iteration", "user")
ROW = "row"
FUNCTIONS = ("random_int", "random_choice", "uuid", "now_iso")
RESERVED_NAMES = frozenset({*BUILTIN_VARIABLES, ROW, *FUNCTIONS})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COLUMN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_INTEGER = re.compile(r"-?\d+")
_BARE_WORD = re.compile(r"[^\s,()\"']+")


class TemplateError(ValueError):
    """A template that cannot compile; `position` is the 1-based character it concerns."""

    def __init__(self, message: str, position: int, detail: str = "") -> None:
        text = f"{message} at character {position}" + (f" ({detail})" if detail else "")
        super().__init__(text)
        self.message = message
        self.position = position
        self.detail = detail


@dataclass
class Context:
    """What a render sees: one virtual user's iteration."""

    variables: dict[str, str] = field(default_factory=dict)
    row: dict[str, str] = field(default_factory=dict)
    iteration: int = 1
    user: int = 1


Part = Callable[[Context], str]


class Template:
    """A compiled template: `render(context)` gives the text; `static` when it has no {{ }}."""

    __slots__ = ("text", "parts", "static", "variables")

    def __init__(self, text: str, parts: list[str | Part], variables: tuple[str, ...]) -> None:
        self.text = text
        self.parts = parts
        self.static = all(isinstance(part, str) for part in parts)
        self.variables = variables  # extracted variables used, in order of appearance

    def render(self, context: Context) -> str:
        if self.static:
            return self.text
        return "".join([part if isinstance(part, str) else part(context) for part in self.parts])


def has_template(text: str) -> bool:
    return "{{" in text


def compile_template(
    text: str,
    *,
    variables: Collection[str] | None = (),
    columns: Collection[str] | None = None,
    later: Mapping[str, str] | None = None,
) -> Template:
    """Compile `text`. `variables` are the names an earlier step extracts (None: the mode
    allows no extraction at all); `columns` the data set's columns (None: no data set);
    `later` maps names that this or a later step extracts to that step's name."""
    parts: list[str | Part] = []
    used: list[str] = []
    position = 0
    while True:
        # A lone "}}" stays literal: JSON bodies such as {"a": {"b": 1}} end with one.
        start = text.find("{{", position)
        if start == -1:
            break
        if start > position:
            parts.append(text[position:start])
        end = text.find("}}", start + 2)
        if end == -1:
            raise TemplateError("'{{' is never closed with '}}'", start + 1)
        parser = _Parser(text, start + 2, end, variables, columns, later or {})
        parts.append(parser.expression())
        used += parser.used
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    if not parts:
        parts.append("")
    return Template(text, _merge_literals(parts), tuple(used))


def render_placeholder(text: str) -> str:
    """`text` with each {{ ... }} replaced by `x`: what static checks (a path's characters,
    a header value's) look at. The text must compile."""
    return re.sub(r"\{\{.*?\}\}", "x", text, flags=re.DOTALL)


def _merge_literals(parts: list[str | Part]) -> list[str | Part]:
    merged: list[str | Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


class _Parser:
    """One `{{ ... }}` expression between text[start:end]."""

    def __init__(
        self,
        text: str,
        start: int,
        end: int,
        variables: Collection[str] | None,
        columns: Collection[str] | None,
        later: Mapping[str, str],
    ) -> None:
        self.later = later
        self.opening = start - 2  # where the '{{' is
        self.text = text
        self.pos = start
        self.end = end
        self.variables = variables
        self.columns = columns
        self.used: list[str] = []

    def error(self, message: str, at: int | None = None, detail: str = "") -> TemplateError:
        return TemplateError(message, (self.pos if at is None else at) + 1, detail)

    def skip_space(self) -> None:
        while self.pos < self.end and self.text[self.pos].isspace():
            self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos, self.end)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def expression(self) -> Part:
        self.skip_space()
        if self.pos >= self.end:
            raise self.error("empty '{{ }}'", self.opening)
        begin = self.pos
        name = self.match(_IDENTIFIER)
        if name is None:
            raise self.error(f"expected a name, found {self.text[self.pos]!r}")
        self.skip_space()
        if self.pos < self.end and self.text[self.pos] == "(":
            part = self.call(name, begin)
        elif self.pos < self.end and self.text[self.pos] == ".":
            part = self.row_value(name, begin)
        else:
            part = self.variable(name, begin)
        self.skip_space()
        if self.pos < self.end:
            raise self.error(
                f"unexpected {self.text[self.pos]!r}", detail="one name or call per '{{ }}'"
            )
        return part

    def variable(self, name: str, begin: int) -> Part:
        if name == "iteration":
            return _iteration
        if name == "user":
            return _user
        if name == ROW:
            raise self.error("'row' needs a column, e.g. row.email", begin)
        if name in FUNCTIONS:
            raise self.error(f"{name} is a function: write {name}(...)", begin)
        known = self.variables
        if known is None:
            raise self.error(
                f"unknown variable {name!r}",
                begin,
                "requests mode has no extracted variables: use built-ins and row.* only",
            )
        if name not in known and name in self.later:
            raise self.error(
                f"variable {name!r} is used before step {self.later[name]!r} extracts it", begin
            )
        if name not in known:
            defined = ", ".join(known) or "none"
            raise self.error(
                f"unknown variable {name!r}", begin, f"defined before this step: {defined}"
            )
        self.used.append(name)

        def value(context: Context) -> str:
            return context.variables[name]

        return value

    def row_value(self, name: str, begin: int) -> Part:
        if name != ROW:
            raise self.error(f"unknown name {name!r} before '.' (only row.column)", begin)
        self.pos += 1
        column_at = self.pos
        column = self.match(_COLUMN)
        if column is None:
            raise self.error("expected a column name after 'row.'")
        if self.columns is None:
            raise self.error(f"row.{column} needs a data set", begin, "this test has none")
        if column not in self.columns:
            known = ", ".join(self.columns) or "none"
            raise self.error(
                f"the data set has no column {column!r}", column_at, f"columns: {known}"
            )

        def value(context: Context) -> str:
            return context.row.get(column, "")

        return value

    def call(self, name: str, begin: int) -> Part:
        if name not in FUNCTIONS:
            raise self.error(
                f"unknown function {name!r}", begin, f"functions: {', '.join(FUNCTIONS)}"
            )
        self.pos += 1  # "("
        args = self.arguments()
        if name == "random_int":
            return self.random_int(args, begin)
        if name == "random_choice":
            if not args:
                raise self.error("random_choice needs at least one argument", begin)
            choices = tuple(value for value, _ in args)
            return lambda context: random.choice(choices)  # noqa: S311 - load, not secrets
        if args:
            raise self.error(f"{name}() takes no arguments", args[0][1])
        return _uuid if name == "uuid" else _now_iso

    def random_int(self, args: list[tuple[str, int]], begin: int) -> Part:
        if len(args) != 2:
            raise self.error("random_int needs two whole numbers, e.g. random_int(1, 100)", begin)
        bounds = []
        for value, at in args:
            if not _INTEGER.fullmatch(value):
                raise self.error(f"random_int takes whole numbers, not {value!r}", at)
            bounds.append(int(value))
        low, high = bounds
        if low > high:
            raise self.error(f"random_int's lower bound {low} is above its upper {high}", begin)
        span = high - low + 1
        draw = random.random
        # random.randint is a chain of Python calls; this is one C call (bias is negligible).
        return lambda context: str(low + int(draw() * span))  # noqa: S311

    def arguments(self) -> list[tuple[str, int]]:
        """(value, position) of each argument up to the closing ')'."""
        args: list[tuple[str, int]] = []
        self.skip_space()
        if self.pos < self.end and self.text[self.pos] == ")":
            self.pos += 1
            return args
        while True:
            self.skip_space()
            at = self.pos
            args.append((self.argument(), at))
            self.skip_space()
            if self.pos >= self.end:
                raise self.error("expected ')'")
            char = self.text[self.pos]
            self.pos += 1
            if char == ")":
                return args
            if char != ",":
                raise self.error(f"expected ',' or ')', found {char!r}", self.pos - 1)

    def argument(self) -> str:
        if self.pos >= self.end:
            raise self.error("expected an argument")
        quote = self.text[self.pos]
        if quote in "\"'":
            close = self.text.find(quote, self.pos + 1, self.end)
            if close == -1:
                raise self.error("unterminated string")
            value = self.text[self.pos + 1 : close]
            self.pos = close + 1
            return value
        word = self.match(_BARE_WORD)
        if word is None:
            raise self.error(f"expected an argument, found {self.text[self.pos]!r}")
        return word


def _iteration(context: Context) -> str:
    return str(context.iteration)


def _user(context: Context) -> str:
    return str(context.user)


def _uuid(context: Context) -> str:
    return str(uuid.uuid4())


def _now_iso(context: Context) -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
