"""Index advice for any PostgreSQL database, proven by the planner with HypoPG.

No Django: `advise` takes a psycopg 3 connection to the target and plain (fingerprint, sql,
total_time_ms) tuples, wherever they came from. For each table the queries filter, join or sort
on, it tries hypothetical btree indexes (HypoPG: the planner sees them, nothing is built):
every candidate column alone, then every pair of columns one query uses together, in both
orders; a column the query sorts DESC NULLS LAST (or NULLS FIRST) is also tried in that order,
which no plain key gives in either scan direction. An index is kept for a query when the
planner's total cost falls by at least `min_saving_pct`; each query takes its cheapest index,
and a wider index must beat the narrower one by `WIDER_INDEX_MIN_GAIN` to be worth its writes.
Recommendations are ranked by the total time of the queries they help. Nothing an existing
index already covers as a leading prefix is tried (the primary key included), nor what the
caller rejects.

Without HypoPG the advice is a heuristic (the first candidate column of each query's table not
covered yet), marked `validated: False`.

What could be dropped instead (`unused_indexes`, `duplicate_indexes`) lives in
`queryopt.indexes`, beside the index survey this module reads existing keys from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import permutations
from typing import Any

import psycopg

from queryopt.explain import ExplainRefused, explain
from queryopt.fingerprints import candidate_columns, sort_orders

DEFAULT_MIN_SAVING_PCT = 50.0
# A two-column index must lower the cost this much more than the best single-column one.
WIDER_INDEX_MIN_GAIN = 0.10
# Bounds the hypothetical indexes tried per table (n singles and n*(n-1) pairs).
MAX_COLUMNS_PER_TABLE = 8
HYPOPG_SETUP = (
    "HypoPG is not available: install the package (e.g. apt-get install postgresql-15-hypopg) "
    "and run CREATE EXTENSION hypopg in the target database as a role allowed to"
)

Query = tuple[str, str, float]  # fingerprint, sql, total time (ms)
# An index key column: its name, and the order it needs ("", "DESC NULLS LAST", "NULLS FIRST").
Key = tuple[str, str]
# indoption bits of pg_index.
INDOPTION_DESC = 1
INDOPTION_NULLS_FIRST = 2


@dataclass
class Recommendation:
    table: str
    columns: list[str]
    statement: str
    cost_before: float  # summed over the queries helped
    cost_after: float | None  # None when not validated by the planner
    fingerprints: list[str]
    total_time_ms: float  # of the queries helped: the ranking key
    validated: bool

    @property
    def saving_pct(self) -> float | None:
        if self.cost_after is None or not self.cost_before:
            return None
        return 100.0 * (1 - self.cost_after / self.cost_before)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "saving_pct": self.saving_pct}


@dataclass
class Advice:
    recommendations: list[Recommendation]
    validated: bool  # False: HypoPG missing, the advice is a heuristic
    notes: list[str] = field(default_factory=list)  # queries that could not be planned, setup


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    columns: frozenset[str]

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass
class _Planned:
    fingerprint: str
    sql: str
    total_time_ms: float
    cost: float
    tables: dict[int, list[str]]  # table oid -> candidate columns, in order of appearance
    orders: dict[int, dict[str, str]]  # table oid -> ORDER BY columns a plain key cannot give


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def as_keys(columns: Sequence[str] | Sequence[Key]) -> tuple[Key, ...]:
    return tuple(column if isinstance(column, tuple) else (column, "") for column in columns)


def key_list(columns: Sequence[str] | Sequence[Key]) -> str:
    """The key columns as in CREATE INDEX: quoted names, each with its order if any."""
    return ", ".join(f"{quote_ident(name)} {order}".rstrip() for name, order in as_keys(columns))


def create_index_statement(table: Table, columns: Sequence[str] | Sequence[Key]) -> str:
    return f"CREATE INDEX CONCURRENTLY ON {table.qualified} ({key_list(columns)})"


def advise(
    conn: psycopg.Connection[Any],
    queries: Iterable[Query],
    min_saving_pct: float = DEFAULT_MIN_SAVING_PCT,
    rejected: Iterable[tuple[str, Sequence[str]]] = (),
) -> Advice:
    """Index recommendations for `queries` on the database of `conn`, best first.

    `rejected` holds (table, columns) pairs never to recommend (the table as in the SQL or
    schema-qualified). The connection should be in autocommit mode.
    """
    notes: list[str] = []
    tables: dict[int, Table] = {}
    planned = [
        p for query in queries if (p := _plan(conn, query, tables, notes)) is not None and p.tables
    ]
    covered = existing_key_columns(conn)
    refused = _rejected_keys(conn, rejected)
    hypopg = hypopg_available(conn)
    if not hypopg:
        notes.append(HYPOPG_SETUP)
        recommendations = _heuristic(planned, tables, covered, refused)
    else:
        recommendations = _validated(conn, planned, tables, covered, refused, min_saving_pct)
    recommendations.sort(key=lambda r: (-r.total_time_ms, r.table, r.columns))
    return Advice(recommendations, validated=hypopg, notes=notes)


def hypopg_available(conn: psycopg.Connection[Any]) -> bool:
    """Whether HypoPG is usable, creating the extension where the role may."""
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    except psycopg.Error:
        return False
    return True


def _plan(
    conn: psycopg.Connection[Any], query: Query, tables: dict[int, Table], notes: list[str]
) -> _Planned | None:
    fingerprint, sql, total_time_ms = query
    try:
        cost = _cost(conn, sql)
    except (ExplainRefused, psycopg.Error) as exc:
        notes.append(f"{fingerprint}: not planned ({str(exc).strip().splitlines()[0]})")
        return None
    by_table: dict[int, list[str]] = {}
    orders: dict[int, dict[str, str]] = {}
    sorts = sort_orders(sql)
    for name, columns in candidate_columns(sql).items():
        table = _table(conn, name, tables)
        if table is not None:
            known = [column for column in columns if column in table.columns]
            if known:
                by_table.setdefault(table.oid, []).extend(known)
                orders.setdefault(table.oid, {}).update(sorts.get(name, {}))
    return _Planned(fingerprint, sql, total_time_ms, cost, by_table, orders)


def _cost(conn: psycopg.Connection[Any], sql: str) -> float:
    return float(explain(conn, sql)["plan"]["Plan"]["Total Cost"])


def _table(conn: psycopg.Connection[Any], name: str, cache: dict[int, Table]) -> Table | None:
    # pglast gives names already case-folded: quote each part so to_regclass keeps them.
    quoted = ".".join(quote_ident(part) for part in name.split("."))
    row = conn.execute(
        "SELECT c.oid, n.nspname, c.relname, array_agg(a.attname::text) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'm') "
        "GROUP BY c.oid, n.nspname, c.relname",
        (quoted,),
    ).fetchone()
    if row is None:
        return None
    return cache.setdefault(row[0], Table(row[0], row[1], row[2], frozenset(row[3])))


def existing_key_columns(conn: psycopg.Connection[Any]) -> dict[int, list[tuple[Key, ...]]]:
    """Per table oid, the key columns of its valid, non-partial btree indexes."""
    rows = conn.execute(
        "SELECT i.indrelid, array_agg(a.attname::text ORDER BY k.ord), "
        "array_agg((i.indoption::int2[])[k.ord - 1] ORDER BY k.ord) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree' "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indisvalid AND i.indpred IS NULL AND k.ord <= i.indnkeyatts "
        "GROUP BY i.indexrelid, i.indrelid"
    ).fetchall()
    covered: dict[int, list[tuple[Key, ...]]] = {}
    for table_oid, columns, options in rows:
        # An expression column (attnum 0, no name) ends what the index covers.
        end = columns.index(None) if None in columns else len(columns)
        key = tuple(
            (name, _order(option)) for name, option in zip(columns[:end], options, strict=False)
        )
        covered.setdefault(table_oid, []).append(key)
    return covered


def _order(option: int) -> str:
    descending, nulls_first = bool(option & INDOPTION_DESC), bool(option & INDOPTION_NULLS_FIRST)
    if descending and not nulls_first:
        return "DESC NULLS LAST"
    return "NULLS FIRST" if nulls_first and not descending else ""


def is_covered(
    columns: Sequence[str] | Sequence[Key], keys: Iterable[Sequence[str] | Sequence[Key]]
) -> bool:
    """Whether an index with `keys` as its key columns already leads with `columns`."""
    wanted = as_keys(columns)
    return any(as_keys(key)[: len(wanted)] == wanted for key in keys)


def _rejected_keys(
    conn: psycopg.Connection[Any], rejected: Iterable[tuple[str, Sequence[str]]]
) -> set[tuple[int, tuple[str, ...]]]:
    keys: set[tuple[int, tuple[str, ...]]] = set()
    cache: dict[int, Table] = {}
    for name, columns in rejected:
        table = _table(conn, name, cache)
        if table is not None:
            keys.add((table.oid, tuple(columns)))
    return keys


def _candidates(planned: list[_Planned], oid: int) -> list[tuple[Key, ...]]:
    """Single columns first, then the pairs some query uses together, in both orders.

    A column sorted in an order a plain key cannot give is also tried with that order.
    """
    singles: list[tuple[Key, ...]] = []
    pairs: list[tuple[Key, ...]] = []
    for query in planned:
        names = list(dict.fromkeys(query.tables.get(oid, ())))[:MAX_COLUMNS_PER_TABLE]
        orders = query.orders.get(oid, {})
        keys = [(name, "") for name in names]
        keys += [(name, orders[name]) for name in names if orders.get(name)]
        singles.extend((key,) for key in keys if (key,) not in singles)
        pairs.extend(
            pair for pair in permutations(keys, 2) if pair[0][0] != pair[1][0] and pair not in pairs
        )
    return singles + pairs


def _validated(
    conn: psycopg.Connection[Any],
    planned: list[_Planned],
    tables: dict[int, Table],
    covered: dict[int, list[tuple[Key, ...]]],
    refused: set[tuple[int, tuple[str, ...]]],
    min_saving_pct: float,
) -> list[Recommendation]:
    # Per query: the cost with each hypothetical index that meets the saving.
    costs: dict[tuple[int, tuple[Key, ...]], dict[int, float]] = {}
    for oid in {oid for query in planned for oid in query.tables}:
        for columns in _candidates(planned, oid):
            names = tuple(name for name, _ in columns)
            if is_covered(columns, covered.get(oid, ())) or (oid, names) in refused:
                continue
            helped = _try_index(conn, tables[oid], columns, planned, oid, min_saving_pct)
            if helped:
                costs[(oid, columns)] = helped
    return _choose(planned, tables, costs)


def _try_index(
    conn: psycopg.Connection[Any],
    table: Table,
    columns: tuple[Key, ...],
    planned: list[_Planned],
    oid: int,
    min_saving_pct: float,
) -> dict[int, float]:
    cols = key_list(columns)
    helped: dict[int, float] = {}
    try:
        conn.execute(
            "SELECT * FROM hypopg_create_index(%s)",
            (f"CREATE INDEX ON {table.qualified} USING btree ({cols})",),
        )
        for position, query in enumerate(planned):
            if oid not in query.tables:
                continue
            cost = _cost(conn, query.sql)
            if cost <= query.cost * (1 - min_saving_pct / 100.0):
                helped[position] = cost
    finally:
        conn.execute("SELECT hypopg_reset()")
    return helped


def _choose(
    planned: list[_Planned],
    tables: dict[int, Table],
    costs: dict[tuple[int, tuple[Key, ...]], dict[int, float]],
) -> list[Recommendation]:
    chosen: dict[tuple[int, tuple[Key, ...]], None] = {}
    for position in range(len(planned)):
        options = [(key, helped[position]) for key, helped in costs.items() if position in helped]
        # Narrow first: a wider index must earn its place by a clearly lower cost.
        options.sort(key=lambda option: (len(option[0][1]), option[1]))
        best: tuple[tuple[int, tuple[Key, ...]], float] | None = None
        for key, cost in options:
            if best is None or cost < best[1] * (1 - WIDER_INDEX_MIN_GAIN):
                best = (key, cost)
        if best is not None:
            chosen[best[0]] = None
    recommendations = []
    for oid, columns in _without_prefixes(list(chosen), costs):
        helped = costs[(oid, columns)]
        queries = [planned[position] for position in helped]
        recommendations.append(
            Recommendation(
                table=_display_name(tables[oid]),
                columns=[name for name, _ in columns],
                statement=create_index_statement(tables[oid], columns),
                cost_before=sum(query.cost for query in queries),
                cost_after=sum(helped.values()),
                fingerprints=[query.fingerprint for query in queries],
                total_time_ms=sum(query.total_time_ms for query in queries),
                validated=True,
            )
        )
    return recommendations


def _without_prefixes(
    chosen: list[tuple[int, tuple[Key, ...]]],
    costs: dict[tuple[int, tuple[Key, ...]], dict[int, float]],
) -> list[tuple[int, tuple[Key, ...]]]:
    """The chosen indexes, less those a wider chosen one leads with and helps as much."""
    return [
        (oid, columns)
        for oid, columns in chosen
        if not any(
            other_oid == oid
            and len(other) > len(columns)
            and other[: len(columns)] == columns
            and costs[(oid, columns)].keys() <= costs[(oid, other)].keys()
            for other_oid, other in chosen
        )
    ]


def _heuristic(
    planned: list[_Planned],
    tables: dict[int, Table],
    covered: dict[int, list[tuple[Key, ...]]],
    refused: set[tuple[int, tuple[str, ...]]],
) -> list[Recommendation]:
    by_key: dict[tuple[int, tuple[str, ...]], list[_Planned]] = {}
    for query in planned:
        for oid, columns in query.tables.items():
            for column in columns:
                key = (oid, (column,))
                if not is_covered(key[1], covered.get(oid, ())) and key not in refused:
                    by_key.setdefault(key, []).append(query)
                    break
    return [
        Recommendation(
            table=_display_name(tables[oid]),
            columns=list(columns),
            statement=create_index_statement(tables[oid], columns),
            cost_before=sum(query.cost for query in queries),
            cost_after=None,
            fingerprints=[query.fingerprint for query in queries],
            total_time_ms=sum(query.total_time_ms for query in queries),
            validated=False,
        )
        for (oid, columns), queries in by_key.items()
    ]


def _display_name(table: Table) -> str:
    return table.name if table.schema == "public" else f"{table.schema}.{table.name}"
