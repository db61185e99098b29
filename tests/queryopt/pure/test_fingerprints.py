from __future__ import annotations

from queryopt.fingerprints import (
    candidate_columns,
    fingerprint,
    normalize,
    normalize_query,
    sort_orders,
)


def test_it_gives_queries_that_differ_by_constants_one_fingerprint() -> None:
    assert fingerprint("SELECT * FROM t WHERE a = 1") == fingerprint("select * from t where a = 42")
    assert fingerprint("SELECT * FROM t WHERE a = 1") == fingerprint("SELECT * FROM t WHERE a = $1")
    assert fingerprint("SELECT * FROM t WHERE a IN (1, 2, 3)") == fingerprint(
        "SELECT * FROM t WHERE a IN (4)"
    )
    assert fingerprint("SELECT * FROM t WHERE a = 1") != fingerprint("SELECT * FROM t WHERE b = 1")


def test_it_replaces_literals_by_numbered_placeholders_after_the_existing_ones() -> None:
    sql = "SELECT * FROM t WHERE a = 1 AND b = 'it''s' AND c = -2.5 AND d = $1"
    assert normalize(sql) == "SELECT * FROM t WHERE a = $2 AND b = $3 AND c = $4 AND d = $1"


def test_it_keeps_non_ascii_text_in_place_when_normalising() -> None:
    assert normalize("SELECT 'é' AS \"ü\", 5") == 'SELECT $1 AS "ü", $2'


def test_it_falls_back_to_a_regex_normaliser_marked_as_such_for_unparsable_sql() -> None:
    result = normalize_query("SELECT * FROM t WHERE a = 1 AND b IN (?, ?) LIMIT ?")
    assert result.method == "regex"
    assert result.text == "SELECT * FROM t WHERE a = ? AND b IN (...) LIMIT ?"
    assert result.fingerprint.startswith("r") and len(result.fingerprint) == 16
    assert fingerprint("SELECT * FROM t WHERE a = 9 AND b IN (?) LIMIT ?") == result.fingerprint
    assert normalize_query("SELECT 1").method == "pglast"


def test_it_finds_where_join_and_order_by_columns_per_table_through_aliases() -> None:
    sql = (
        "SELECT a.id FROM emissions_activity a JOIN emissions_site s ON s.id = a.site_id "
        "WHERE a.site = $1 AND a.category IN ('x', 'y') AND a.day BETWEEN $2 AND $3 "
        "ORDER BY a.kg_co2e DESC NULLS LAST LIMIT 50"
    )
    assert candidate_columns(sql) == {
        "emissions_site": ["id"],
        "emissions_activity": ["site_id", "site", "category", "day", "kg_co2e"],
    }


def test_it_attributes_unqualified_columns_only_when_one_table_is_read() -> None:
    assert candidate_columns("SELECT * FROM t WHERE a > 3 AND b <= $1 ORDER BY c DESC") == {
        "t": ["a", "b", "c"]
    }
    assert candidate_columns("SELECT * FROM t JOIN u ON t.k = u.k WHERE a = 1") == {
        "t": ["k"],
        "u": ["k"],
    }


def test_it_ignores_non_indexable_predicates_and_select_list_columns() -> None:
    sql = "SELECT x FROM t WHERE a <> 1 AND b NOT IN (1, 2) AND lower(c) = 'x' AND d = 1"
    assert candidate_columns(sql) == {"t": ["d"]}


def test_it_treats_subqueries_as_their_own_level_and_skips_cte_names() -> None:
    sql = (
        "WITH recent AS (SELECT * FROM runs WHERE started > $1) "
        "SELECT * FROM recent WHERE id = 1 AND owner = (SELECT max(id) FROM users WHERE name = $2)"
    )
    assert candidate_columns(sql) == {"runs": ["started"], "users": ["name"]}


def test_it_keeps_schema_qualified_names_and_reads_update_and_delete() -> None:
    assert candidate_columns("SELECT * FROM public.t x WHERE x.a = 1") == {"public.t": ["a"]}
    assert candidate_columns("UPDATE t SET a = 1 WHERE id = $1") == {"t": ["id"]}
    assert candidate_columns("DELETE FROM t WHERE b < now()") == {"t": ["b"]}


def test_it_has_no_candidates_for_unparsable_sql() -> None:
    assert candidate_columns("SELECT * FROM t WHERE a = ?") == {}


def test_it_reads_psycopg_placeholders_as_the_dollar_ones_pg_stat_statements_shows() -> None:
    django_sql = 'SELECT "t"."id" FROM "t" WHERE "t"."a" = %s AND "t"."b" LIKE %s'
    assert normalize_query(django_sql).method == "pglast"
    assert fingerprint(django_sql) == fingerprint(
        'SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND "t"."b" LIKE $2'
    )
    assert normalize("SELECT * FROM t WHERE a = %(a)s AND b = %(a)s AND c = 'x%%'") == (
        "SELECT * FROM t WHERE a = $1 AND b = $1 AND c = $2"
    )
    assert candidate_columns('SELECT * FROM "t" WHERE "t"."a" = %s') == {"t": ["a"]}


def test_it_notes_the_sort_orders_a_plain_index_cannot_give() -> None:
    sql = (
        "SELECT * FROM emissions_activity a WHERE a.site = $1 "
        "ORDER BY a.kg_co2e DESC NULLS LAST, a.id DESC, a.day NULLS FIRST, a.x ASC"
    )
    assert sort_orders(sql) == {
        "emissions_activity": {"kg_co2e": "DESC NULLS LAST", "day": "NULLS FIRST"}
    }
    assert sort_orders("SELECT * FROM t ORDER BY a DESC NULLS FIRST") == {}


def test_it_keeps_order_by_and_group_by_positions_as_pg_stat_statements_does() -> None:
    sql = "SELECT a, b FROM t WHERE s = 5 GROUP BY 1, 2 ORDER BY 2 DESC NULLS LAST, 1 LIMIT 21"
    assert normalize(sql) == (
        "SELECT a, b FROM t WHERE s = $1 GROUP BY 1, 2 ORDER BY 2 DESC NULLS LAST, 1 LIMIT $2"
    )
    assert normalize("SELECT a FROM t ORDER BY a + 1") == "SELECT a FROM t ORDER BY a + $1"


def test_it_resolves_order_by_positions_to_the_columns_they_name() -> None:
    sql = 'SELECT "t"."id", "t"."kg" FROM "t" WHERE "t"."site" = $1 ORDER BY 2 DESC NULLS LAST, 1'
    assert candidate_columns(sql) == {"t": ["site", "kg", "id"]}
    assert sort_orders(sql) == {"t": {"kg": "DESC NULLS LAST"}}
