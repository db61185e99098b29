"""On SQLite (`make run`'s default) plans and index advice cannot work: the pages say so in one
line, with how to get PostgreSQL, instead of offering a button that fails in the worker."""

from __future__ import annotations

import html
from typing import Any

from queryopt.models import QueryShape, QueryTarget
from tests.queryopt.pages.conftest import Seen


def own_shape() -> QueryShape:
    return QueryShape.objects.create(
        target=None, fingerprint="own-sqlite", query_text="SELECT 1 FROM loadtests_run"
    )


def test_the_query_page_says_explain_needs_postgresql_on_sqlite(
    admin_client: Any, settings: Any, db: Any
) -> None:
    settings.DATABASE_IS_POSTGRES = False
    shape = own_shape()
    body = admin_client.get(f"/queries/{shape.pk}/").content.decode()
    assert 'id="explain-missing"' in body
    assert "Explain needs PostgreSQL" in body and "DATABASE_URL=postgres://" in body
    assert 'id="explain-now"' not in body
    # Asked anyway (an old page): refused with the same line, nothing queued.
    response = admin_client.post(f"/queries/{shape.pk}/explain/", follow=True)
    assert "Explain needs PostgreSQL" in response.content.decode()
    shape.refresh_from_db()
    assert shape.explain_requested_at is None


def test_the_query_page_offers_explain_on_postgresql_or_for_a_target(
    admin_client: Any, settings: Any, seen: Seen
) -> None:
    own = own_shape()
    assert 'id="explain-now"' in admin_client.get(f"/queries/{own.pk}/").content.decode()
    settings.DATABASE_IS_POSTGRES = False
    # A registered target is PostgreSQL whatever this app's database is.
    body = admin_client.get(f"/queries/{seen.by_site.pk}/").content.decode()
    assert 'id="explain-now"' in body and "explain-missing" not in body


def test_the_indexes_page_says_index_advice_needs_postgresql_on_sqlite(
    admin_client: Any, settings: Any, db: Any
) -> None:
    assert not QueryTarget.objects.exists()
    body = admin_client.get("/queries/indexes/").content.decode()
    assert "No query target is registered" in body
    settings.DATABASE_IS_POSTGRES = False
    body = admin_client.get("/queries/indexes/").content.decode()
    line = html.unescape(body.split('id="indexes-missing">')[1].split("</p>")[0])
    assert line.startswith("Index advice needs PostgreSQL: this app's database is SQLite")
    assert "queryopt target add" in line and "\n" not in line
