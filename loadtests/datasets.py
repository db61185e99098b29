"""Data sets: CSV files whose rows feed a flow's `{{ row.column }}` templates.

Pure: no Django, so the upload rules are tested with plain bytes. The admin checks an
upload with `parse`; a run reads its rows back with `rows_of` from the text stored in the
database (so that a worker on any host can read it).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from loadtests.engine.config import MAX_DATA_ROWS

ORDERS = ("sequential", "random", "unique")
BOM = "\ufeff"


class DataSetInvalid(ValueError):
    """An upload that cannot be a data set; the message names the rule it breaks."""


@dataclass(frozen=True)
class ParsedDataSet:
    text: str  # the file as text, without a byte-order mark
    columns: tuple[str, ...]
    row_count: int
    sha256: str  # of the bytes as uploaded
    size_bytes: int


def sha256_of(data: bytes) -> str:
    """The hex SHA-256 of a data set's file: what a run's frozen config records."""
    return hashlib.sha256(data).hexdigest()


def parse(data: bytes, *, max_mb: int) -> ParsedDataSet:
    """Check an uploaded CSV and describe it; raises DataSetInvalid naming the first broken
    rule: at most `max_mb` MB, UTF-8 (a BOM is fine), a header row of unique non-empty
    column names, at least one data row (at most MAX_DATA_ROWS), every row as wide as the
    header, and no NUL character (PostgreSQL cannot store one in text)."""
    if len(data) > max_mb * 1024 * 1024:
        raise DataSetInvalid(
            f"The file is {len(data) / 1024 / 1024:.1f} MB; data sets may be at most "
            f"{max_mb} MB (LOADTEST_DATASET_MAX_MB)."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataSetInvalid(
            f"The file is not UTF-8 text (byte {exc.start + 1}, line {line}); save it as UTF-8 CSV."
        ) from exc
    text = text.removeprefix(BOM)
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataSetInvalid(
            f"Line {line} contains a NUL character (\\x00), which a data set may not hold; "
            "save the file as plain UTF-8 CSV text."
        )
    columns, row_count = _check_rows(text)
    return ParsedDataSet(text, columns, row_count, sha256_of(data), len(data))


def _check_rows(text: str) -> tuple[tuple[str, ...], int]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise DataSetInvalid("The first line must be a header row naming the columns.")
        columns = tuple(name.strip() for name in header)
        _check_header(columns)
        rows = 0
        for row in reader:
            if not row:
                continue  # a blank line (often the last) is no row
            if len(row) != len(columns):
                raise DataSetInvalid(
                    f"Line {reader.line_num} has {len(row)} values; the header has "
                    f"{len(columns)} columns."
                )
            rows += 1
            if rows > MAX_DATA_ROWS:
                raise DataSetInvalid(
                    f"The file has more than {MAX_DATA_ROWS} data rows; a data set has at most "
                    f"{MAX_DATA_ROWS} (MAX_DATA_ROWS): every worker holds its rows in memory."
                )
    except csv.Error as exc:
        raise DataSetInvalid(f"Line {reader.line_num} is not valid CSV: {exc}.") from exc
    if rows == 0:
        raise DataSetInvalid("The file has a header but no data row; add at least one row.")
    return columns, rows


def _check_header(columns: tuple[str, ...]) -> None:
    for index, name in enumerate(columns, start=1):
        if not name:
            raise DataSetInvalid(f"Header column {index} has no name; name every column.")
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise DataSetInvalid(
            f"The header names {', '.join(repr(n) for n in duplicates)} more than once; "
            "column names must be unique."
        )


def rows_of(text: str) -> tuple[dict[str, str], ...]:
    """The data rows of a stored (already checked) data set, as column -> value."""
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = tuple(name.strip() for name in next(reader))
    return tuple(dict(zip(columns, row, strict=True)) for row in reader if row)
