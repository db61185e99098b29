from __future__ import annotations

from typing import Any

import psycopg
import pytest

from queryopt.explain import ExplainRefused, explain, explain_analyze


@pytest.fixture
def accounts(pg: psycopg.Connection[Any]) -> str:
    pg.execute("DROP TABLE IF EXISTS accounts")
    pg.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text, balance integer)")
    pg.execute("INSERT INTO accounts SELECT g, 'o' || g, 100 FROM generate_series(1, 1000) g")
    pg.execute("ANALYZE accounts")
    return "accounts"


def balances(pg: psycopg.Connection[Any]) -> list[tuple[int, int]]:
    return pg.execute("SELECT count(*), sum(balance) FROM accounts").fetchall()


def test_it_plans_a_statement_without_running_it(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    result = explain(pg, "SELECT * FROM accounts WHERE owner = 'o5'")
    assert result["plan"]["Plan"]["Node Type"] == "Seq Scan"
    assert result["plan"]["Plan"]["Relation Name"] == "accounts"
    assert "Actual Rows" not in result["plan"]["Plan"]
    assert result["generic"] is False and result["analyzed"] is False
    assert len(result["plan_hash"]) == 16


def test_it_gives_a_generic_plan_for_placeholders_without_values(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    result = explain(pg, "SELECT * FROM accounts WHERE id = $1 AND owner = $2")
    assert result["generic"] is True
    assert result["plan"]["Plan"]["Node Type"] == "Index Scan"
    assert "$1" in result["plan"]["Plan"]["Index Cond"]
    # The prepared statement is gone and the connection is out of any transaction.
    assert pg.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    assert pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_it_plans_placeholders_with_the_values_given(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    result = explain(pg, "SELECT * FROM accounts WHERE id = $1", [7])
    assert result["generic"] is False
    assert "Index Cond" in result["plan"]["Plan"]


def test_it_keeps_the_plan_hash_over_constants_and_changes_it_with_the_shape(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    one = explain(pg, "SELECT * FROM accounts WHERE id = 1")["plan_hash"]
    two = explain(pg, "SELECT * FROM accounts WHERE id = 900")["plan_hash"]
    scan = explain(pg, "SELECT * FROM accounts WHERE balance = 1")["plan_hash"]
    assert one == two
    assert one != scan


def test_it_runs_explain_analyze_of_a_select_and_rolls_back(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    result = explain_analyze(pg, "SELECT * FROM accounts WHERE owner = $1", ["o5"])
    assert result["analyzed"] is True
    assert result["plan"]["Plan"]["Actual Rows"] == 1
    assert pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("UPDATE accounts SET balance = 0", "select only"),
        ("DELETE FROM accounts", "select only"),
        (
            "WITH gone AS (DELETE FROM accounts RETURNING id) SELECT count(*) FROM gone",
            "no data-modifying CTE",
        ),
        ("SELECT 1; UPDATE accounts SET balance = 0", "single statement"),
        ("SELECT * FROM accounts FOR UPDATE", "no locking clause"),
        ("SELECT * FROM (SELECT * FROM accounts FOR SHARE) x", "no locking clause"),
        ("SELECT * INTO copied FROM accounts", "no SELECT INTO"),
        ("SELEC 1", "syntax"),
    ],
)
def test_it_refuses_explain_analyze_of_anything_but_one_select_and_changes_nothing(
    pg: psycopg.Connection[Any], accounts: str, sql: str, rule: str
) -> None:
    before = balances(pg)
    with pytest.raises(ExplainRefused) as refused:
        explain_analyze(pg, sql)
    assert refused.value.rule == rule
    assert rule in str(refused.value)
    assert balances(pg) == before
    assert pg.execute("SELECT to_regclass('copied')").fetchone() == (None,)


def test_it_refuses_explain_analyze_of_placeholders_without_values(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    with pytest.raises(ExplainRefused) as refused:
        explain_analyze(pg, "SELECT * FROM accounts WHERE id = $1")
    assert refused.value.rule == "values"


def test_it_runs_a_select_that_writes_through_a_function_read_only(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    pg.execute(
        "CREATE OR REPLACE FUNCTION drain() RETURNS integer LANGUAGE sql AS "
        "'UPDATE accounts SET balance = 0 RETURNING 1'"
    )
    before = balances(pg)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        explain_analyze(pg, "SELECT drain()")
    assert balances(pg) == before


def test_it_stops_a_slow_query_at_the_statement_timeout(pg: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.QueryCanceled):
        explain_analyze(pg, "SELECT pg_sleep(30)", timeout_s=0.2)
    assert pg.execute("SELECT 1").fetchone() == (1,)


def test_it_refuses_a_connection_already_inside_a_transaction(
    scratch_dsn: str, accounts: str
) -> None:
    with psycopg.connect(scratch_dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(ExplainRefused) as refused:
            explain_analyze(conn, "SELECT 1")
    assert refused.value.rule == "own transaction"


def test_it_plans_sql_with_psycopg_placeholders_as_django_captures_it(
    pg: psycopg.Connection[Any], accounts: str
) -> None:
    sql = 'SELECT * FROM "accounts" WHERE "accounts"."id" = %s'
    assert explain(pg, sql)["generic"] is True
    assert explain(pg, sql, [7])["plan"]["Plan"]["Node Type"] == "Index Scan"
    analyzed = explain_analyze(pg, sql, [7])
    assert analyzed["plan"]["Plan"]["Actual Rows"] == 1
