from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from queryopt.advisor import advise
from queryopt.fingerprints import fingerprint
from queryopt.indexes import duplicate_indexes, unused_indexes

BY_SITE = (
    "SELECT id, site, kg_co2e FROM emissions_activity WHERE site = $1 "
    "ORDER BY kg_co2e DESC NULLS LAST LIMIT 50"
)


def query(sql: str, total_time_ms: float = 1000.0) -> tuple[str, str, float]:
    return (fingerprint(sql), sql, total_time_ms)


@pytest.fixture
def hypopg(pg: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    # Fails, never skips, when HypoPG is missing: `make test` installs it.
    pg.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    return pg


@pytest.fixture
def activities(pg: psycopg.Connection[Any]) -> Iterator[str]:
    """A table of the emissions by-site query's shape (not the app's own table)."""
    pg.execute(
        "CREATE TABLE emissions_activity (id bigserial PRIMARY KEY, site varchar(64) NOT NULL, "
        "category varchar(32) NOT NULL, kg_co2e numeric(14, 3), occurred date NOT NULL)"
    )
    pg.execute(
        "INSERT INTO emissions_activity (site, category, kg_co2e, occurred) "
        "SELECT 'site-' || (g % 200), 'cat-' || (g % 7), (g * 37) % 10000 / 10.0, "
        "date '2026-01-01' + g % 300 FROM generate_series(1, 100000) g"
    )
    pg.execute("ANALYZE emissions_activity")
    yield "emissions_activity"
    pg.execute("DROP TABLE emissions_activity")


def test_it_recommends_an_index_on_an_unindexed_filter_column_with_the_planners_proof(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    sql = "SELECT * FROM readings WHERE sensor = $1"
    advice = advise(hypopg, [query(sql)])
    assert advice.validated is True
    [recommendation] = advice.recommendations
    assert recommendation.table == "readings"
    assert recommendation.columns == ["sensor"]
    assert recommendation.statement == (
        'CREATE INDEX CONCURRENTLY ON "public"."readings" ("sensor")'
    )
    assert recommendation.cost_after <= recommendation.cost_before * 0.5
    assert recommendation.saving_pct >= 50
    assert recommendation.fingerprints == [fingerprint(sql)]
    assert recommendation.validated is True
    # Nothing hypothetical is left behind.
    assert hypopg.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone() == (0,)


def test_it_recommends_nothing_once_the_index_exists(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    hypopg.execute("CREATE INDEX readings_sensor_site ON readings (sensor, site)")
    try:
        sql = "SELECT * FROM readings WHERE sensor = 12"
        assert advise(hypopg, [query(sql)]).recommendations == []
    finally:
        hypopg.execute("DROP INDEX readings_sensor_site")


def test_it_recommends_nothing_for_a_primary_key_lookup(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    advice = advise(hypopg, [query("SELECT * FROM readings r WHERE r.id = $1")])
    assert advice.validated is True
    assert advice.recommendations == []


def test_it_keeps_only_indexes_that_save_the_minimum(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    # value >= 0 keeps every row: no index lowers that cost.
    assert advise(hypopg, [query("SELECT * FROM readings WHERE value >= 0")]).recommendations == []
    sql = "SELECT * FROM readings WHERE sensor = $1"
    assert advise(hypopg, [query(sql)], min_saving_pct=99.99).recommendations == []


def test_it_advises_the_by_site_query_on_site(
    hypopg: psycopg.Connection[Any], activities: str
) -> None:
    advice = advise(hypopg, [query(BY_SITE)])
    [recommendation] = advice.recommendations
    assert recommendation.table == "emissions_activity"
    # The key in the query's own order lets the scan stop after 50 rows, without a sort.
    assert recommendation.columns == ["site", "kg_co2e"]
    assert recommendation.statement == (
        'CREATE INDEX CONCURRENTLY ON "public"."emissions_activity" '
        '("site", "kg_co2e" DESC NULLS LAST)'
    )
    assert recommendation.saving_pct >= 50
    hypopg.execute(recommendation.statement)
    assert advise(hypopg, [query(BY_SITE)]).recommendations == []


def test_it_still_advises_the_sort_order_when_a_plain_index_on_the_columns_exists(
    hypopg: psycopg.Connection[Any], activities: str
) -> None:
    hypopg.execute("CREATE INDEX activity_site ON emissions_activity (site)")
    [recommendation] = advise(hypopg, [query(BY_SITE)]).recommendations
    assert recommendation.statement.endswith('("site", "kg_co2e" DESC NULLS LAST)')


def test_it_ranks_recommendations_by_the_total_time_of_the_queries_they_help(
    hypopg: psycopg.Connection[Any], big_table: str, activities: str
) -> None:
    advice = advise(
        hypopg,
        [
            query("SELECT * FROM readings WHERE sensor = $1", total_time_ms=10.0),
            query(BY_SITE, total_time_ms=500.0),
            query("SELECT count(*) FROM readings WHERE sensor = $1 AND value > 3", 20.0),
        ],
    )
    assert [(r.table, r.columns[0]) for r in advice.recommendations] == [
        ("emissions_activity", "site"),
        ("readings", "sensor"),
    ]
    assert advice.recommendations[1].total_time_ms == 30.0
    assert len(advice.recommendations[1].fingerprints) == 2


def test_it_never_recommends_what_the_caller_rejects(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    sql = "SELECT * FROM readings WHERE sensor = $1"
    advice = advise(hypopg, [query(sql)], rejected=[("readings", ["sensor"])])
    assert all(r.columns != ["sensor"] for r in advice.recommendations)


def test_it_notes_queries_it_cannot_plan_and_goes_on(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    advice = advise(
        hypopg,
        [
            query("SELECT * FROM missing WHERE a = 1"),
            query("SELECT * FROM readings WHERE sensor = 4"),
        ],
    )
    assert [r.columns for r in advice.recommendations] == [["sensor"]]
    assert len(advice.notes) == 1 and "missing" in advice.notes[0]


def test_it_gives_heuristic_advice_marked_not_validated_without_hypopg(
    scratch_dsn: str, big_table: str
) -> None:
    role = f"offgridperf_qa_nohypo_{os.getpid()}"
    with psycopg.connect(scratch_dsn, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT SELECT ON readings TO {role}")
        try:
            # Without the extension in this database, and a role that may not create it.
            admin.execute("DROP EXTENSION IF EXISTS hypopg")
            dsn = psycopg.conninfo.make_conninfo(scratch_dsn, user=role)
            with psycopg.connect(dsn, autocommit=True) as conn:
                advice = advise(conn, [query("SELECT * FROM readings WHERE sensor = $1")])
        finally:
            admin.execute(f"REVOKE ALL ON readings FROM {role}")
            admin.execute(f"DROP ROLE {role}")
    assert advice.validated is False
    assert any("CREATE EXTENSION hypopg" in note for note in advice.notes)
    [recommendation] = advice.recommendations
    assert recommendation.columns == ["sensor"]
    assert recommendation.validated is False and recommendation.cost_after is None
    assert recommendation.as_dict()["validated"] is False


def test_it_lists_unused_and_duplicate_indexes_but_not_unique_ones(
    pg: psycopg.Connection[Any],
) -> None:
    pg.execute("CREATE TABLE ledger (id integer PRIMARY KEY, a integer, b integer, c integer)")
    try:
        pg.execute("CREATE INDEX ledger_a ON ledger (a)")
        pg.execute("CREATE INDEX ledger_a_b ON ledger (a, b)")
        pg.execute("CREATE INDEX ledger_a_b_again ON ledger (a, b)")
        pg.execute("CREATE UNIQUE INDEX ledger_c ON ledger (c)")
        pg.execute("CREATE INDEX ledger_c_a ON ledger (c, a)")
        unused = {row["index"] for row in unused_indexes(pg) if row["table"] == "ledger"}
        assert unused == {"ledger_a", "ledger_a_b", "ledger_a_b_again", "ledger_c_a"}
        duplicates = {
            (row["index"], row["covered_by"])
            for row in duplicate_indexes(pg)
            if row["table"] == "ledger"
        }
        assert duplicates == {("ledger_a", "ledger_a_b"), ("ledger_a_b_again", "ledger_a_b")}
        statements = [row["statement"] for row in duplicate_indexes(pg)]
        assert 'DROP INDEX CONCURRENTLY "public"."ledger_a"' in statements
    finally:
        pg.execute("DROP TABLE ledger")


def test_it_advises_queries_as_django_captures_them_with_psycopg_placeholders(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    sql = 'SELECT "readings"."id" FROM "readings" WHERE "readings"."sensor" = %s'
    [recommendation] = advise(hypopg, [query(sql)]).recommendations
    assert recommendation.columns == ["sensor"]
    assert recommendation.fingerprints == [fingerprint(sql)]


def test_it_drops_an_index_that_a_wider_recommended_one_leads_with(
    hypopg: psycopg.Connection[Any], big_table: str
) -> None:
    narrow = query("SELECT * FROM readings WHERE site = $1")
    wide = query("SELECT * FROM readings WHERE site = $1 AND value = $2")
    [recommendation] = advise(hypopg, [narrow, wide]).recommendations
    assert recommendation.columns == ["site", "value"]
    assert sorted(recommendation.fingerprints) == sorted([narrow[0], wide[0]])
