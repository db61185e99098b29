"""Parse and validate uploaded activity rows (CSV or JSON). No Django imports.

Every bad row is reported with its line number (CSV: the physical line, the header being
line 1; JSON: the 1-based position in the list) and one reason per bad field; good rows are
kept. Validation is written for speed: a 1,000,000-row upload is parsed in a few seconds.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple


@dataclass(frozen=True)
class NumericColumn:
    """A SQL numeric(max_digits, decimal_places) column: what a value must round to, to fit."""

    max_digits: int
    decimal_places: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimal_places)

    @property
    def limit(self) -> Decimal:
        """Every stored value is below this (in magnitude) once rounded to `quantum`."""
        return Decimal(10) ** (self.max_digits - self.decimal_places)

    @property
    def plain_pattern(self) -> re.Pattern[str]:
        """Digits that fit the column as typed (no rounding, no exponent)."""
        whole, places = self.max_digits - self.decimal_places, self.decimal_places
        return re.compile(rf"[0-9]{{1,{whole}}}(?:\.[0-9]{{1,{places}}})?")

    @property
    def sql_type(self) -> str:
        return f"numeric({self.max_digits},{self.decimal_places})"

    @classmethod
    def of(cls, field: Any) -> NumericColumn:
        """The column of a DecimalField (anything with max_digits and decimal_places)."""
        return cls(field.max_digits, field.decimal_places)

    def rule(self) -> str:
        return f"below {self.limit:,.0f} once rounded to {self.decimal_places} decimal places"


# The one statement of Activity.quantity's precision: the model declares its field from it
# (rows.py imports no Django, so the rule cannot be read from the field here).
QUANTITY = NumericColumn(max_digits=16, decimal_places=4)
FIELDS = ("scope", "category", "activity_type", "quantity", "unit", "date", "site")
TEXT_LIMITS = {"category": 64, "activity_type": 64, "unit": 16, "site": 64}
SCOPES = {"1": 1, "2": 2, "3": 3, 1: 1, 2: 2, 3: 3}
FAST_SCOPES = {"1": 1, "2": 2, "3": 3}
PLAIN_QUANTITY = QUANTITY.plain_pattern
# JSON nesting: json.loads recurses once per level, so a body of 100,000 '[' raised
# RecursionError (a 500). Uploads need 3 levels; anything deeper than this is refused.
MAX_JSON_DEPTH = 32
MAX_ID_DIGITS = 19
PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
COPY_SPECIAL = re.compile(r"[\\\n\r\x00]")
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
MAX_REPORTED_ERRORS = 1000
KNOWN_DAYS: set[str] = set()  # valid YYYY-MM-DD strings seen: uploads repeat a few hundred


class ActivityRow(NamedTuple):
    line: int
    scope: int
    category: str
    activity_type: str
    quantity: Decimal
    unit: str
    date: date
    site: str


@dataclass
class ParsedRows:
    rows: list[ActivityRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first 1,000
    error_count: int = 0

    def reject(self, line: int, problems: Mapping[str, str]) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            reason = "; ".join(f"{name}: {message}" for name, message in problems.items())
            self.errors.append({"line": line, "reason": reason, "fields": dict(problems)})


class UploadFormatError(ValueError):
    """The upload as a whole is unreadable; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _scope(value: Any) -> int:
    if isinstance(value, str):
        value = value.strip()
    scope = SCOPES.get(value) if not isinstance(value, bool) else None
    if scope is None:
        raise ValueError("must be 1, 2 or 3")
    return scope


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    value = value.strip()
    if not value:
        raise ValueError("is required")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    if len(value) > limit:
        raise ValueError(f"is longer than {limit} characters")
    return value


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a number")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError(f"is not a number ({str(value)[:20]!r})") from None
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number < 0:
        raise ValueError("must not be negative")
    return fit_quantity(number)


def fit_quantity(number: Decimal, column: NumericColumn = QUANTITY) -> Decimal:
    """`number` rounded as the column stores it; ValueError unless the rounded value fits.

    The range is checked after rounding: 999999999999.99995 is below 10^12 but is stored
    as 10^12, which numeric(16,4) cannot hold (a database error that lost the whole upload).
    """
    if number >= column.limit:  # first: quantize() itself fails on numbers this far out
        raise ValueError(f"must be below {column.limit:,.0f}")
    rounded = number.quantize(column.quantum)
    if rounded >= column.limit:
        raise ValueError(f"rounds to {rounded}; it must be {column.rule()}")
    return rounded


def _date(value: Any) -> date:
    if not isinstance(value, str) or len(value.strip()) != 10:
        raise ValueError("must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"is not a valid date ({value.strip()!r})") from None


def clean_row(line: int, values: Mapping[str, Any]) -> ActivityRow | dict[str, str]:
    """A valid row, or {field: reason} for each bad field."""
    problems: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name in FIELDS:
        raw = values.get(name)
        if raw is None or raw == "":
            problems[name] = "is required"
            continue
        try:
            if name == "scope":
                cleaned[name] = _scope(raw)
            elif name == "quantity":
                cleaned[name] = _quantity(raw)
            elif name == "date":
                cleaned[name] = _date(raw)
            else:
                cleaned[name] = _text(raw, TEXT_LIMITS[name])
        except ValueError as exc:
            problems[name] = str(exc)
    if problems:
        return problems
    return ActivityRow(line=line, **cleaned)


def collect(numbered: Iterable[tuple[int, Mapping[str, Any] | str]]) -> ParsedRows:
    """Validate (line, values) pairs; a str in place of values is a reason to reject."""
    parsed = ParsedRows()
    for line, values in numbered:
        result = clean_row(line, values) if not isinstance(values, str) else {"row": values}
        if isinstance(result, ActivityRow):
            parsed.rows.append(result)
        else:
            parsed.reject(line, result)
    return parsed


class CsvUpload:
    """A CSV document whose header names the columns (any order, any case), read lazily.

    The header is checked at once (UploadFormatError); rows are validated as they are
    consumed, through `rows()` (ActivityRow objects) or `copy_lines()` (PostgreSQL COPY text,
    the fast path of batch ingest), and every bad one lands in `report`.
    """

    def __init__(self, text: str) -> None:
        self.report = ParsedRows()
        self._reader = csv.reader(io.StringIO(text))
        try:
            header = next(self._reader)
        except StopIteration:
            raise UploadFormatError("file", "is empty; expected a header line and rows") from None
        except csv.Error as exc:
            raise UploadFormatError("file", f"is not readable CSV ({exc})") from None
        self.columns = [name.strip().lower().lstrip("\ufeff") for name in header]
        missing = [name for name in FIELDS if name not in self.columns]
        if missing:
            raise UploadFormatError(
                "header", f"lacks column(s) {', '.join(missing)}; expected {', '.join(FIELDS)}"
            )
        self.positions = [self.columns.index(name) for name in FIELDS]

    def rows(self) -> Iterator[ActivityRow]:
        for line, values in self._records():
            row = _fast_row(line, *values)
            if row is None:
                row = self._thorough(line, values)
            if row is not None:
                yield row

    def copy_lines(self, batch_id: int) -> Iterator[str]:
        """`COPY ... (batch_id, line_number, scope, category, activity_type, quantity, unit,
        date, site) FROM STDIN` text lines, one per good row."""
        prefix = f"{batch_id}\t"
        for line, values in self._records():
            text = _fast_copy_text(values)
            if text is not None:
                yield f"{prefix}{line}\t{text}\n"
                continue
            row = self._thorough(line, values)
            if row is not None:
                yield copy_line(batch_id, row)

    def _thorough(self, line: int, values: list[str]) -> ActivityRow | None:
        result = clean_row(line, dict(zip(FIELDS, values, strict=True)))
        if isinstance(result, ActivityRow):
            return result
        self.report.reject(line, result)
        return None

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, the seven values in FIELDS order) of each non-blank record."""
        reader, positions, width = self._reader, self.positions, len(self.columns)
        in_order = positions == list(range(len(FIELDS))) and width == len(FIELDS)
        while True:
            try:
                for record in reader:
                    if len(record) == width:
                        yield (
                            reader.line_num,
                            record if in_order else [record[i] for i in positions],
                        )
                    elif record and (len(record) > 1 or record[0].strip()):
                        problem = f"has {len(record)} fields; the header has {width}"
                        self.report.reject(reader.line_num, {"row": problem})
                return
            except csv.Error as exc:  # the reader carries on with the next line
                self.report.reject(reader.line_num, {"row": f"is not readable CSV ({exc})"})


def parse_csv(text: str) -> ParsedRows:
    """Every row of a CSV document, validated, in memory."""
    upload = CsvUpload(text)
    rows = list(upload.rows())
    return ParsedRows(rows=rows, errors=upload.report.errors, error_count=upload.report.error_count)


def _fast_row(
    line: int,
    scope: str,
    category: str,
    activity_type: str,
    quantity: str,
    unit: str,
    day: str,
    site: str,
) -> ActivityRow | None:
    """A row from well-formed text in a few microseconds, or None to take the thorough path."""
    number = FAST_SCOPES.get(scope)
    category, activity_type, unit, site = (
        category.strip(),
        activity_type.strip(),
        unit.strip(),
        site.strip(),
    )
    if (
        number is None
        or len(day) != 10
        or not 0 < len(category) <= 64
        or not 0 < len(activity_type) <= 64
        or not 0 < len(unit) <= 16
        or not 0 < len(site) <= 64
    ):
        return None
    if not PLAIN_QUANTITY.fullmatch(quantity):
        return None  # rounding, exponents, other digits: the thorough path decides
    try:
        amount = Decimal(quantity)
        when = date.fromisoformat(day)
    except (InvalidOperation, ValueError):
        return None
    return ActivityRow(line, number, category, activity_type, amount, unit, when, site)


def _fast_copy_text(values: list[str]) -> str | None:
    """The COPY text of a plainly well-formed row, or None to take the thorough path.

    Ingest of 1,000,000-row uploads lives here: no objects are built, the values that pass
    these checks go to PostgreSQL as they were typed.
    """
    scope, category, activity_type, quantity, unit, day, site = values
    if (
        scope not in FAST_SCOPES
        or not PLAIN_QUANTITY.fullmatch(quantity)
        or not PLAIN_DATE.fullmatch(day)
        or not 0 < len(category) <= 64
        or not 0 < len(activity_type) <= 64
        or not 0 < len(unit) <= 16
        or not 0 < len(site) <= 64
    ):
        return None
    text = "\t".join(values)
    if (
        text.count("\t") != 6
        or COPY_SPECIAL.search(text)
        or text != text.strip()
        or "\t " in text
        or " \t" in text
    ):
        return None  # escapes or surrounding spaces: let the thorough path clean it
    if day not in KNOWN_DAYS:
        try:
            date.fromisoformat(day)  # 2024-02-30 has the right shape but is no date
        except ValueError:
            return None
        if len(KNOWN_DAYS) < 100_000:
            KNOWN_DAYS.add(day)
    return text


def copy_line(batch_id: int, row: ActivityRow) -> str:
    """One COPY text line for a validated row, special characters escaped."""
    texts = (row.category, row.activity_type, row.unit, row.site)
    category, activity_type, unit, site = (t.translate(COPY_ESCAPES) for t in texts)
    return (
        f"{batch_id}\t{row.line}\t{row.scope}\t{category}\t{activity_type}\t{row.quantity}\t"
        f"{unit}\t{row.date.isoformat()}\t{site}\n"
    )


def parse_json(data: Any) -> ParsedRows:
    """Rows of a JSON list of objects; line numbers are 1-based positions in the list."""
    if not isinstance(data, list):
        raise UploadFormatError("activities", "must be a list of objects")
    return collect(
        (position, item if isinstance(item, dict) else "must be an object")
        for position, item in enumerate(data, start=1)
    )


def nests_deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels deep (walked level by level,
    without recursion; a few percent of the time json.loads took to build the document)."""
    level, depth = [document], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            value
            for container in level
            for value in (container.values() if type(container) is dict else container)
            if type(value) is dict or type(value) is list
        ]
    return False


def load_json(text: str, field: str = "body") -> Any:
    """The document of a JSON upload; UploadFormatError naming `field` when unreadable or
    nested deeper than MAX_JSON_DEPTH (json.loads recurses per level: a RecursionError)."""
    too_deep = UploadFormatError(
        field, f"is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    )
    try:
        document = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise UploadFormatError(field, f"is not valid JSON ({exc})") from None
    if type(document) in (dict, list) and nests_deeper_than(document, MAX_JSON_DEPTH):
        raise too_deep
    return document


def is_id(text: str) -> bool:
    """Whether `text` is a database id: ASCII digits only, within a bigint's 19.

    str.isdigit() and int() also take '²', '٣' and '３' (a 500, or another batch).
    """
    return text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS
