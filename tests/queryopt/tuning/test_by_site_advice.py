"""The tuning loop on the emissions demo: the by-site query gets its index advice.

The app's own test database is the target (own_database=True), so the target's connection
must see the seeded rows: a transactional test, whose rows are committed (and flushed after).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from emissions import seeding
from emissions.models import Activity
from queryopt import services
from queryopt.models import QueryTarget

# Enough rows over the demo's 60 sites that, without an index, the planner scans the table.
ACTIVITIES = 100_000
SITES = ("site-001", "site-007", "site-012", "site-033", "site-059")
TABLE = "emissions_activity"


@pytest.fixture
def seeded(transactional_db: Any) -> Iterator[int]:
    seeding.seed(ACTIVITIES)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    yield Activity.objects.count()


@pytest.fixture
def own_target(seeded: int) -> QueryTarget:
    target, _ = services.add_target("own", services.own_database_dsn(), own_database=True)
    return target


def by_site_window(target: QueryTarget) -> None:
    """A snapshot window in which the by-site listing ran for several sites."""
    client = Client()
    services.take_snapshot(target)
    for site in SITES * 2:
        response = client.get("/api/activities/by-site/", {"site": site, "page_size": 20})
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == 20
    services.take_snapshot(target)


def recommended(target: QueryTarget) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("queryopt", "recommend", "--target", target.name, "--json", stdout=out)
    return [r for r in json.loads(out.getvalue()) if r["table"] == TABLE]


def on_site(recommendations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recommendations if r["columns"][0] == "site"]


@pytest.mark.slow
@pytest.mark.urls("emissions.api_urls")
def test_it_advises_the_by_site_index_and_not_again_once_it_exists(
    own_target: QueryTarget, seeded: int
) -> None:
    assert seeded == ACTIVITIES
    by_site_window(own_target)
    (advice,) = on_site(recommended(own_target))
    assert advice["validated"] is True
    assert advice["saving_pct"] >= 50
    assert advice["cost_after"] <= advice["cost_before"] / 2
    assert advice["statement"].startswith(f'CREATE INDEX CONCURRENTLY ON "public"."{TABLE}"')
    with psycopg.connect(own_target.dsn, autocommit=True) as conn:
        conn.execute(advice["statement"])
        conn.execute(f"ANALYZE {TABLE}")
    try:
        by_site_window(own_target)
        again = recommended(own_target)
        assert advice["statement"] not in [r["statement"] for r in again]
        assert on_site(again) == []
    finally:
        with psycopg.connect(own_target.dsn, autocommit=True) as conn:
            for (statement,) in conn.execute(
                "SELECT format('DROP INDEX %%I.%%I', schemaname, indexname) FROM pg_indexes "
                "WHERE tablename = %s AND indexdef LIKE %s",
                [TABLE, "%(site%"],
            ).fetchall():
                conn.execute(statement)
