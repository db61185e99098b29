"""Fingerprints, normalised text and index candidate columns of SQL statements.

Pure: no Django and no database. PostgreSQL SQL goes through pglast (libpg_query, the parser of
PostgreSQL itself), so `fingerprint` groups queries the way pg_stat_statements does: constants,
parameters and the length of IN lists do not count. SQL that pglast cannot parse (SQLite dialect,
a truncated statement) falls back to a regex normaliser; its fingerprints start with "r", a
letter the hexadecimal pglast fingerprints never contain, so the two never collide.

    >>> fingerprint("SELECT * FROM t WHERE a = 1") == fingerprint("select * from t where a = $1")
    True
    >>> normalize("SELECT * FROM t WHERE a = 1 AND b = 'x'")
    'SELECT * FROM t WHERE a = $1 AND b = $2'
    >>> candidate_columns("SELECT * FROM t x WHERE x.a = $1 ORDER BY x.b DESC")
    {'t': ['a', 'b']}
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class _Pglast:
    """pglast's modules, imported on first use: importing them costs some 0.1 s of CPU, and
    every web and worker process imports this package (the admin does) while most of them
    never parse SQL."""

    @functools.cached_property
    def ast(self) -> Any:
        import pglast.ast

        return pglast.ast

    @functools.cached_property
    def parser(self) -> Any:
        import pglast.parser

        return pglast.parser

    @functools.cached_property
    def enums(self) -> Any:
        import pglast.enums

        return pglast.enums


pg = _Pglast()


# Scanner tokens that are literals, replaced by placeholders as pg_stat_statements does.
CONSTANT_TOKENS = frozenset({"ICONST", "FCONST", "SCONST", "BCONST", "XCONST", "USCONST"})
RANGE_OPERATORS = frozenset({"=", "<", ">", "<=", ">="})
FALLBACK_PREFIX = "r"

_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NUMBER_LITERAL = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_PSYCOPG_PLACEHOLDER = re.compile(r"%%|%s|%\((\w+)\)s")


@dataclass(frozen=True)
class NormalizedQuery:
    text: str
    fingerprint: str
    # "pglast" when PostgreSQL's parser understood the SQL, "regex" for the fallback.
    method: str


def normalize_query(sql: str) -> NormalizedQuery:
    """The normalised text and fingerprint of `sql`, saying which method produced them.

    SQL with psycopg placeholders (%s, %(name)s: what Django's cursor wrappers see) is read
    with $n in their place, so it meets the same query as pg_stat_statements shows it.
    """
    parsed = _fingerprinted(sql)
    if parsed is not None:
        text, fingerprint = parsed
        return NormalizedQuery(_pglast_normalize(text), fingerprint, "pglast")
    text = regex_normalize(sql)
    sha1 = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return NormalizedQuery(text, FALLBACK_PREFIX + sha1[:15], "regex")


def postgres_text(sql: str) -> str | None:
    """`sql` as PostgreSQL parses it (psycopg placeholders made $n), or None if it does not."""
    parsed = _fingerprinted(sql)
    return parsed[0] if parsed else None


def _fingerprinted(sql: str) -> tuple[str, str] | None:
    # libpg_query's fingerprint parses without building Python objects: a parse check at a
    # fraction of parse_sql's cost, on the capture path of every query.
    texts = (sql, dollar_placeholders(sql)) if "%" in sql else (sql,)
    for text in texts:
        try:
            return text, pg.parser.fingerprint(text)
        except pg.parser.ParseError:
            continue
    return None


def normalize(sql: str) -> str:
    """`sql` with its literals replaced by $n placeholders (a regex fallback if unparsable)."""
    return normalize_query(sql).text


def fingerprint(sql: str) -> str:
    """A 16-character fingerprint equal for queries that differ only by their constants."""
    parsed = _fingerprinted(sql)
    return parsed[1] if parsed else normalize_query(sql).fingerprint


def dollar_placeholders(sql: str) -> str:
    """`sql` with psycopg's %s and %(name)s placeholders as $n, and %% as %."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1) or f"#{len(numbers)}"
        return f"${numbers.setdefault(key, len(numbers) + 1)}"

    return _PSYCOPG_PLACEHOLDER.sub(replace, sql)


def _pglast_normalize(sql: str) -> str:
    raw = sql  # the scanner's offsets count characters
    tokens = pg.parser.scan(sql)
    numbers = [int(raw[t.start + 1 : t.end + 1]) for t in tokens if t.name == "PARAM"]
    next_number = max(numbers, default=0) + 1
    # ORDER BY 2 and GROUP BY 1 name columns, not values: pg_stat_statements keeps them too.
    ordinals = _ordinal_locations(tokens)
    pieces: list[str] = []
    position = 0
    for token in tokens:
        if token.name not in CONSTANT_TOKENS or token.start in ordinals:
            continue
        start = token.start
        # A minus sign directly before a number belongs to the literal.
        if token.name in {"ICONST", "FCONST"} and start > 0 and raw[start - 1 : start] == "-":
            start -= 1
        pieces.append(raw[position:start])
        pieces.append(f"${next_number}")
        next_number += 1
        position = token.end + 1
    pieces.append(raw[position:])
    return "".join(pieces)


_LIST_ENDS = frozenset(
    {"LIMIT", "OFFSET", "HAVING", "FETCH", "FOR", "WINDOW", "UNION", "EXCEPT", "INTERSECT"}
    | {"ORDER", "ASCII_59"}
)
_ORDINAL_FOLLOWERS = frozenset({"ASCII_44", "ASC", "DESC", "NULLS_P", "ASCII_41"}) | _LIST_ENDS


def _ordinal_locations(tokens: list[Any]) -> set[int]:
    """Where the integer positions of ORDER BY and GROUP BY lists (`ORDER BY 2 DESC, 1`)
    start: a lone integer right after BY or a comma of such a list."""
    locations: set[int] = set()
    depth, list_depth = 0, None
    for i, token in enumerate(tokens):
        name = token.name
        if name == "ASCII_40":
            depth += 1
        elif name == "ASCII_41":
            depth -= 1
            if list_depth is not None and depth < list_depth:
                list_depth = None
        elif name == "BY" and i and tokens[i - 1].name in {"ORDER", "GROUP_P"}:
            list_depth = depth
        elif list_depth == depth and name in _LIST_ENDS:
            list_depth = None
        elif name == "ICONST" and list_depth == depth and i:
            follower = tokens[i + 1].name if i + 1 < len(tokens) else "ASCII_59"
            if tokens[i - 1].name in {"BY", "ASCII_44"} and follower in _ORDINAL_FOLLOWERS:
                locations.add(token.start)
    return locations


def regex_normalize(sql: str) -> str:
    """Fallback normaliser for SQL pglast cannot parse: literals become ?, IN lists (...)."""
    text = _STRING_LITERAL.sub("?", sql)
    text = _NUMBER_LITERAL.sub("?", text)
    text = _IN_LIST.sub("IN (...)", text)
    return _WHITESPACE.sub(" ", text).strip()


# -- candidate columns -------------------------------------------------------------------------


def candidate_columns(sql: str) -> dict[str, list[str]]:
    """Per table, the columns an index could serve, in order of appearance.

    The columns of JOIN conditions, of WHERE equality, range, IN and BETWEEN predicates, and of
    ORDER BY, with aliases resolved to table names (schema-qualified when the SQL qualifies
    them). An unqualified column is attributed only when its query level reads a single table.
    Unparsable SQL has no candidates.
    """
    parsable = postgres_text(sql)
    if parsable is None:
        return {}
    statements = pg.parser.parse_sql(parsable)
    found: dict[str, list[str]] = {}
    ctes: set[str] = set()
    for raw in statements:
        for node in walk(raw.stmt):
            if isinstance(node, pg.ast.CommonTableExpr):
                ctes.add(node.ctename)
    for raw in statements:
        for node in walk(raw.stmt):
            if isinstance(node, pg.ast.SelectStmt | pg.ast.UpdateStmt | pg.ast.DeleteStmt):
                for table, column in _level_columns(node, ctes):
                    columns = found.setdefault(table, [])
                    if column not in columns:
                        columns.append(column)
    return found


def sort_orders(sql: str) -> dict[str, dict[str, str]]:
    """Per table, the ORDER BY columns no plain btree index can give in either scan direction.

    Each maps to the order its index key needs ("DESC NULLS LAST" or "NULLS FIRST"): a plain
    index read forwards gives ASC NULLS LAST, read backwards DESC NULLS FIRST, nothing else.
    """
    parsable = postgres_text(sql)
    if parsable is None:
        return {}
    nodes = list(walk(pg.parser.parse_sql(parsable)))
    ctes = {n.ctename for n in nodes if isinstance(n, pg.ast.CommonTableExpr)}
    found: dict[str, dict[str, str]] = {}
    for node in nodes:
        if not isinstance(node, pg.ast.SelectStmt) or not node.sortClause:
            continue
        aliases, _ = _scope(node.fromClause, ctes)
        for sortby in node.sortClause:
            resolved = _resolve(_sort_expression(sortby, node), aliases)
            order = _index_order(sortby)
            if resolved and order:
                found.setdefault(resolved[0], {}).setdefault(resolved[1], order)
    return found


def _index_order(sortby: pg.ast.SortBy) -> str:
    descending = sortby.sortby_dir == pg.enums.SortByDir.SORTBY_DESC
    if sortby.sortby_nulls == pg.enums.SortByNulls.SORTBY_NULLS_DEFAULT:
        return ""
    nulls_first = sortby.sortby_nulls == pg.enums.SortByNulls.SORTBY_NULLS_FIRST
    if descending and not nulls_first:
        return "DESC NULLS LAST"
    if not descending and nulls_first:
        return "NULLS FIRST"
    return ""


def walk(node: Any) -> Iterator[Any]:
    """Every AST node under `node`, depth first, in source order."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from walk(item)
    elif isinstance(node, pg.ast.Node):
        yield node
        for name in node:
            yield from walk(getattr(node, name))


def _walk_level(node: Any) -> Iterator[Any]:
    """Like `walk`, without descending into subqueries (they are levels of their own)."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk_level(item)
    elif isinstance(node, pg.ast.Node):
        if isinstance(node, pg.ast.SubLink | pg.ast.RangeSubselect | pg.ast.SelectStmt):
            return
        yield node
        for name in node:
            yield from _walk_level(getattr(node, name))


def _table_name(rangevar: pg.ast.RangeVar) -> str:
    return f"{rangevar.schemaname}.{rangevar.relname}" if rangevar.schemaname else rangevar.relname


def _scope(from_items: Any, ctes: set[str]) -> tuple[dict[str, str], list[Any]]:
    """Aliases to table names of one FROM list, and the JOIN conditions in it."""
    aliases: dict[str, str] = {}
    joins: list[Any] = []
    for item in _walk_level(from_items or ()):
        if isinstance(item, pg.ast.RangeVar):
            if item.relname in ctes and not item.schemaname:
                continue
            table = _table_name(item)
            aliases[item.alias.aliasname if item.alias else item.relname] = table
        elif isinstance(item, pg.ast.JoinExpr) and item.quals is not None:
            joins.append(item.quals)
    return aliases, joins


def _level_columns(stmt: Any, ctes: set[str]) -> Iterator[tuple[str, str]]:
    if isinstance(stmt, pg.ast.SelectStmt):
        aliases, joins = _scope(stmt.fromClause, ctes)
        sort = stmt.sortClause or ()
    elif isinstance(stmt, pg.ast.UpdateStmt):
        aliases, joins = _scope((stmt.relation, *(stmt.fromClause or ())), ctes)
        sort = ()
    else:
        aliases, joins = _scope((stmt.relation, *(stmt.usingClause or ())), ctes)
        sort = ()
    if not aliases:
        return
    for quals in joins:
        yield from _predicate_columns(quals, aliases)
    if stmt.whereClause is not None:
        yield from _predicate_columns(stmt.whereClause, aliases)
    for sortby in sort:
        resolved = _resolve(_sort_expression(sortby, stmt), aliases)
        if resolved:
            yield resolved


def _sort_expression(sortby: pg.ast.SortBy, stmt: pg.ast.SelectStmt) -> Any:
    """What a SortBy sorts on: for `ORDER BY 2`, the second expression of the select list."""
    node = sortby.node
    if isinstance(node, pg.ast.A_Const) and isinstance(node.val, pg.ast.Integer):
        targets = stmt.targetList or ()
        position = node.val.ival
        if 1 <= position <= len(targets) and isinstance(targets[position - 1], pg.ast.ResTarget):
            return targets[position - 1].val
    return node


def _predicate_columns(expr: Any, aliases: dict[str, str]) -> Iterator[tuple[str, str]]:
    for node in _walk_level(expr):
        if not isinstance(node, pg.ast.A_Expr) or not _is_indexable(node):
            continue
        for side in (node.lexpr, node.rexpr):
            resolved = _resolve(side, aliases)
            if resolved:
                yield resolved


def _is_indexable(expr: pg.ast.A_Expr) -> bool:
    kind = expr.kind
    if kind == pg.enums.A_Expr_Kind.AEXPR_OP:
        return bool(expr.name) and expr.name[-1].sval in RANGE_OPERATORS
    if kind == pg.enums.A_Expr_Kind.AEXPR_IN:
        return expr.name[-1].sval == "="  # IN, not NOT IN
    return kind in {pg.enums.A_Expr_Kind.AEXPR_BETWEEN, pg.enums.A_Expr_Kind.AEXPR_BETWEEN_SYM}


def _resolve(node: Any, aliases: dict[str, str]) -> tuple[str, str] | None:
    if not isinstance(node, pg.ast.ColumnRef):
        return None
    names = [field.sval for field in node.fields if isinstance(field, pg.ast.String)]
    if len(names) != len(node.fields):  # t.* and the like
        return None
    if len(names) == 1:
        tables = set(aliases.values())
        return (tables.pop(), names[0]) if len(tables) == 1 else None
    qualifier = ".".join(names[:-1])
    table = aliases.get(qualifier) or aliases.get(names[-2])
    if table is None and qualifier in aliases.values():
        table = qualifier
    return (table, names[-1]) if table else None
