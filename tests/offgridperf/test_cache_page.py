from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from emissions.cache import ACTIVITY, BATCH, QUERY
from offgridperf import cache


@pytest.fixture(autouse=True)
def clean_cache() -> Iterator[None]:
    cache.clear_all()
    yield
    cache.reset_process_state()


@pytest.fixture
def operator_client(client: Any, django_user_model: Any) -> Any:
    """A user who may see the Cache page and invalidate, no more (not a superuser)."""
    user = django_user_model.objects.create_user("operator", "op@example.com", "pw-op-123456")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_cache", "invalidate_cache"])
    )
    client.force_login(user)
    return client


def test_it_shows_every_strategy_with_its_figures(viewer_client: Any) -> None:
    BATCH.set("detail:1", "x")
    BATCH.get("detail:1")
    BATCH.get("detail:2")
    response = viewer_client.get("/cache/")
    assert response.status_code == 200
    body = response.content.decode()
    for prefix in ("batch:*", "activity:*", "emissions:*", "query:*"):
        assert prefix in body
    batch_row = next(row for row in response.context["rows"] if row["name"] == "batch")
    assert batch_row["hit_rate"] == 50.0
    assert batch_row["keys"] == 1
    assert batch_row["p50_ms"] != "–"
    assert 'aria-current="page">Cache</a>' in body
    assert "Invalidate" not in body  # no permission, no button


def test_it_needs_a_login(client: Any) -> None:
    response = client.get("/cache/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_refuses_invalidation_without_the_permission(viewer_client: Any) -> None:
    QUERY.set("k", 1)
    assert viewer_client.get("/cache/query/invalidate/").status_code == 403
    assert viewer_client.post("/cache/query/invalidate/", {"confirm": "on"}).status_code == 403
    assert QUERY.get("k") == 1


def test_it_asks_for_confirmation_before_invalidating(operator_client: Any) -> None:
    QUERY.set("k", 1)
    page = operator_client.get("/cache/query/invalidate/")
    assert page.status_code == 200
    assert "Invalidate every key of the query strategy" in page.content.decode()
    unconfirmed = operator_client.post("/cache/query/invalidate/", {})
    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm." in unconfirmed.content.decode()
    assert QUERY.get("k") == 1


def test_it_invalidates_a_strategy_when_confirmed(operator_client: Any) -> None:
    QUERY.set("k", 1)
    BATCH.set("k", 2)
    response = operator_client.post("/cache/query/invalidate/", {"confirm": "on"}, follow=True)
    assert response.redirect_chain[-1][0] == "/cache/"
    assert "Strategy query invalidated" in response.content.decode()
    assert QUERY.get("k") is None
    assert BATCH.get("k") == 2


def test_it_answers_404_for_an_unknown_strategy(operator_client: Any) -> None:
    assert operator_client.post("/cache/nope/invalidate/", {"confirm": "on"}).status_code == 404


def test_it_resets_the_metrics_when_confirmed(admin_client: Any) -> None:
    ACTIVITY.get("missing")
    response = admin_client.post("/cache/metrics/reset/", {"confirm": "on"})
    assert response.status_code == 302
    assert cache.figures()["activity"].lookups == 0


def test_it_refuses_csrf_less_posts(operator_client: Any, client: Any) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.cookies = operator_client.cookies
    assert strict.post("/cache/query/invalidate/", {"confirm": "on"}).status_code == 403
