"""Per (run, step, second) aggregation in the agent: pure, no Django, no Redis."""

from __future__ import annotations

from offgridperf_agent.aggregate import (
    Aggregator,
    RequestFigures,
    counts_index,
    fingerprint,
)

from stats import histogram as histograms

REPEATED = 'SELECT "app_site"."name" FROM "app_site" WHERE "app_site"."id" = %s'


def figures(queries: int, *, server_us: int = 5000, repeated: int = 0) -> RequestFigures:
    """A request of `queries` queries, `repeated` of them the same statement."""
    statements = {f"SELECT {n}": [1, 2000] for n in range(queries - repeated)}
    if repeated:
        statements[REPEATED] = [repeated, 100_000 * repeated]
    return RequestFigures(
        server_ns=server_us * 1000, cpu_ns=1_000_000, cache_calls=1, cache_ns=10_000,
        view="app.views.batches", status=200, statements=statements,
        frames={REPEATED: "app.views.batches:12"} if repeated else {},
    )  # fmt: skip


def test_its_histogram_slots_are_the_engines() -> None:
    for value in (0, 1, 999, 2048, 123_456, 3_600_000_000, 10**12):
        assert counts_index(value) == histograms.counts_index(min(value, 3_600_000_000))


def test_the_same_statement_with_other_values_has_one_fingerprint() -> None:
    assert fingerprint("SELECT * FROM t WHERE id IN (%s, %s)") == fingerprint(
        "select * FROM t  WHERE id IN (%s)".replace("select", "SELECT")
    )
    assert fingerprint("SELECT * FROM t WHERE id = 1") == fingerprint(
        "SELECT * FROM t WHERE id = 2"
    )
    assert fingerprint("SELECT a FROM t") != fingerprint("SELECT b FROM t")


def test_it_groups_by_run_step_and_second_and_flags_n_plus_one() -> None:
    aggregator = Aggregator()
    aggregator.record(1, "list", 100, figures(3))
    aggregator.record(1, "list", 100, figures(21, repeated=20))
    aggregator.record(1, "list", 101, figures(2))
    aggregator.record(2, "list", 100, figures(2))
    messages = aggregator.take(before_second=101)
    assert sorted((m["run"], m["second"]) for m in messages) == [(1, 100), (2, 100)]
    first = next(m for m in messages if m["run"] == 1)
    assert (first["requests"], first["queries"], first["queries_max"]) == (2, 24, 21)
    # SELECT 0, 1 and 2 are one statement with other values: one fingerprint, 3 + 1 queries
    assert sorted(entry["count"] for entry in first["sql"]) == [4, 20]
    assert (first["db_us"], first["cpu_us"], first["cache_us"]) == (2 * 3 + 1 * 2 + 2000, 2000, 20)
    assert sum(first["server_hist"].values()) == 2
    assert first["n_plus_one"] == [
        {"fingerprint": fingerprint(REPEATED), "view": "app.views.batches",
         "frame": "app.views.batches:12", "sql": REPEATED, "requests": 1, "count": 20}
    ]  # fmt: skip
    assert [m["second"] for m in aggregator.take()] == [101]
