"""Indexes that could be dropped, and whether an index is in place, on any PostgreSQL database.

No Django: each function takes a psycopg 3 connection to the target.

- `unused_indexes`: never scanned since the database's statistics were last reset, and not
  enforcing a rule (primary key, unique, exclusion), with their size and that reset time, so a
  page can say "unused since ...".
- `duplicate_indexes`: an index whose key columns (with their operator classes, collations and
  orders) lead another index of the same table and access method, or are identical to them,
  and that backs no constraint; each says which index covers it.
- `existing_index_covering`: the name of a valid index on a table that leads with the given
  columns, to notice a recommended index once someone has created it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from queryopt.advisor import quote_ident

UNUSED_SQL = """
SELECT s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid),
       pg_get_indexdef(s.indexrelid)
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname
"""

# Expression and partial indexes are left out: their keys cannot be compared column by column.
INDEXES_SQL = """
SELECT n.nspname, t.relname, ic.relname, am.amname, i.indisunique,
       i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[],
       i.indnkeyatts, pg_relation_size(i.indexrelid),
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
ORDER BY n.nspname, t.relname, ic.relname
"""

COVERING_SQL = """
SELECT ic.relname,
       array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE k.ord <= i.indnkeyatts)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass(%s) AND i.indisvalid AND i.indisready AND i.indpred IS NULL
GROUP BY i.indexrelid, ic.relname
ORDER BY ic.relname
"""


@dataclass(frozen=True)
class _Index:
    schema: str
    table: str
    name: str
    method: str
    unique: bool
    key: tuple[tuple[int, int, int, int], ...]  # (attnum, opclass, collation, option) per key
    size_bytes: int
    backs_constraint: bool


def qualified(table: str) -> str:
    """A table name as the SQL gave it ("t" or "schema.t"), quoted part by part for
    to_regclass, so a name pglast already case-folded is kept as it is."""
    return ".".join(quote_ident(part) for part in table.split("."))


def drop_index_statement(schema: str, index: str) -> str:
    return f"DROP INDEX CONCURRENTLY {quote_ident(schema)}.{quote_ident(index)}"


def stats_reset(conn: psycopg.Connection[Any]) -> datetime | None:
    """When this database's statistics (idx_scan among them) were last reset, or None (never,
    i.e. since the database was created)."""
    row = conn.execute(
        "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return row[0] if row else None


def unused_indexes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Indexes never scanned since `stats_reset`, biggest first.

    Primary-key, unique and exclusion indexes, and any index backing a constraint, are never
    listed: they enforce a rule even when no query reads them. Each row: schema, table, index,
    size_bytes, definition, stats_reset (datetime or None) and the DROP statement.
    """
    since = stats_reset(conn)
    return [
        {
            "schema": schema,
            "table": table,
            "index": index,
            "size_bytes": int(size),
            "definition": definition,
            "stats_reset": since,
            "statement": drop_index_statement(schema, index),
        }
        for schema, table, index, size, definition in conn.execute(UNUSED_SQL).fetchall()
    ]


def duplicate_indexes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Indexes another index of the same table and method makes redundant, with the one that
    covers each (`covered_by`).

    Redundant: its key is a leading prefix of the other's key, or identical to it (of two
    identical ones, the later name is listed). An index backing a constraint is never listed;
    a unique one only when an identical unique index covers it, since a wider unique index
    does not enforce the narrower rule. Each row: schema, table, index, covered_by,
    identical, size_bytes and the DROP statement.
    """
    indexes = [_index(row) for row in conn.execute(INDEXES_SQL).fetchall()]
    found = []
    for index in indexes:
        cover = next((other for other in indexes if _covers(other, index)), None)
        if cover is not None:
            found.append(
                {
                    "schema": index.schema,
                    "table": index.table,
                    "index": index.name,
                    "covered_by": cover.name,
                    "identical": cover.key == index.key,
                    "size_bytes": index.size_bytes,
                    "statement": drop_index_statement(index.schema, index.name),
                }
            )
    return found


def _index(row: tuple[Any, ...]) -> _Index:
    schema, table, name, method, unique, keys, classes, collations, options, nkeys, size, backs = (
        row
    )
    key = tuple(zip(keys, classes, collations, options, strict=False))[:nkeys]
    return _Index(schema, table, name, method, unique, key, int(size), backs)


def _covers(other: _Index, index: _Index) -> bool:
    """Whether `other` makes `index` redundant."""
    if (other.schema, other.table, other.method) != (index.schema, index.table, index.method):
        return False
    if other.name == index.name or index.backs_constraint:
        return False
    if other.key[: len(index.key)] != index.key:
        return False
    identical = other.key == index.key
    if index.unique and not (identical and other.unique):
        return False
    # Of two identical indexes keep the one that backs a constraint, is unique, or sorts first.
    if identical and index.unique == other.unique and not other.backs_constraint:
        return other.name < index.name
    return True


def existing_index_covering(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str]
) -> str | None:
    """The name of a valid, non-partial index on `table` whose leading key columns are
    `columns` in that order (the first such by name), or None. `table` may be
    schema-qualified; a table that does not exist has no index."""
    wanted = list(columns)
    for name, keys in conn.execute(COVERING_SQL, (qualified(table),)).fetchall():
        if keys is not None and list(keys[: len(wanted)]) == wanted:
            return str(name)
    return None
