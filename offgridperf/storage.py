"""How much room the product's data takes: the database and the profile artefacts on disk,
for the overview's storage line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection


@dataclass(frozen=True)
class Storage:
    database_bytes: int | None
    artefact_bytes: int
    artefact_files: int


def database_bytes() -> int | None:
    """The database's size: PostgreSQL's own figure (one query), or the SQLite files'."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    name = str(settings.DATABASES["default"]["NAME"])
    files = [Path(name), Path(f"{name}-wal"), Path(f"{name}-shm")]
    sizes = [path.stat().st_size for path in files if path.is_file()]
    return sum(sizes) if sizes else None


def artefact_usage(root: Path | None = None) -> tuple[int, int]:
    """(bytes, files) under the artefact directory."""
    root = root or Path(settings.PROFILING_ARTEFACT_DIR)
    total = files = 0
    for path in root.rglob("*") if root.is_dir() else ():
        try:
            if path.is_file():
                total += path.stat().st_size
                files += 1
        except OSError:  # pruned while we walked
            continue
    return total, files


# The artefact walk is memoised per process for this long: the overview is polled by many
# people, and a directory of thousands of captures is not free to walk.
ARTEFACT_MEMO_S = 60.0
_artefact_memo: dict[str, tuple[float, tuple[int, int]]] = {}


def measure() -> Storage:
    root = str(settings.PROFILING_ARTEFACT_DIR)
    now = time.monotonic()
    taken = _artefact_memo.get(root)
    if taken is None or now - taken[0] > ARTEFACT_MEMO_S:
        taken = (now, artefact_usage(Path(root)))
        _artefact_memo[root] = taken
    artefact_bytes, artefact_files = taken[1]
    return Storage(database_bytes(), artefact_bytes, artefact_files)


def forget_artefact_usage() -> None:
    _artefact_memo.clear()


@dataclass(frozen=True)
class RetainedKind:
    name: str
    setting: str  # days to keep; 0: for ever
    label: str


# What retention prunes (offgridperf.retention), kind by kind.
RETAINED_KINDS = (
    RetainedKind("run_intervals", "RETENTION_RUN_INTERVALS_DAYS", "run intervals"),
    RetainedKind("profiles", "RETENTION_PROFILES_DAYS", "profile captures"),
    RetainedKind("query_windows", "RETENTION_QUERY_WINDOWS_DAYS", "query windows"),
    RetainedKind("memory_samples", "RETENTION_MEMORY_SAMPLES_DAYS", "memory samples"),
)


def retention_text() -> str:
    """'run intervals 90 d, profiles 30 d, ...' (0 days: kept for ever)."""
    parts = []
    for kind in RETAINED_KINDS:
        days = getattr(settings, kind.setting)
        parts.append(f"{kind.label} {days} d" if days else f"{kind.label} for ever")
    return ", ".join(parts)
