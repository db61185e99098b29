"""The admin pages of hints, recommendations, plans and app-side captures."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from queryopt.models import (
    HintKind,
    IndexHint,
    IndexRecommendation,
    NPlusOne,
    PlanSource,
    QueryPlan,
    QueryShape,
    QueryStatWindow,
    QueryTarget,
    RecommendationStatus,
    SlowQuery,
)
from tests.queryopt.targets.conftest import PASSWORD


@pytest.fixture
def rows(db: Any) -> dict[str, Any]:
    """One row of each model, on a target whose DSN holds a password."""
    now = timezone.now()
    target = QueryTarget.objects.create(
        name="shop", dsn=f"postgresql://app:{PASSWORD}@127.0.0.1:5432/shop"
    )
    shape = QueryShape.objects.create(
        target=target, fingerprint="f1", query_text="SELECT * FROM orders WHERE customer = $1"
    )
    recommendation = IndexRecommendation.objects.create(
        target=target,
        table="orders",
        columns=["customer"],
        statement='CREATE INDEX CONCURRENTLY ON "public"."orders" ("customer")',
        cost_before=100.0,
        cost_after=8.0,
        created_at=now,
        updated_at=now,
    )
    recommendation.shapes.add(shape)
    return {
        "indexhint": IndexHint.objects.create(
            target=target, table="orders", columns=["customer"], kind=HintKind.PREFERRED
        ),
        "indexrecommendation": recommendation,
        "queryplan": QueryPlan.objects.create(
            shape=shape,
            captured_at=now,
            plan_hash="a" * 16,
            plan={"Plan": {"Node Type": "Seq Scan", "Total Cost": 100.0}},
            source=PlanSource.SLOW,
        ),
        "slowquery": SlowQuery.objects.create(
            shape=shape,
            captured_at=now,
            duration_ms=150.0,
            sql="SELECT * FROM orders WHERE customer = %s",
            origin="GET shop.views.orders",
        ),
        "nplusone": NPlusOne.objects.create(
            shape=shape,
            origin="GET shop.views.orders",
            first_seen_at=now,
            last_seen_at=now,
        ),
        "querystatwindow": QueryStatWindow.objects.create(
            shape=shape,
            window_start=now,
            window_end=now,
            origin="GET shop.views.orders",
            calls=3,
            total_ms=30.0,
            min_ms=5.0,
            max_ms=15.0,
            p95_ms=15.0,
            p99_ms=15.0,
        ),
    }


def test_it_loads_every_page_for_a_superuser_without_the_dsn(
    admin_client: Any, rows: dict[str, Any]
) -> None:
    for model, row in rows.items():
        for url in (
            reverse(f"admin:queryopt_{model}_changelist"),
            reverse(f"admin:queryopt_{model}_change", args=[row.pk]),
        ):
            page = admin_client.get(url)
            assert page.status_code == 200, url
            assert PASSWORD not in page.content.decode()
            assert "127.0.0.1:5432" not in page.content.decode()
    assert admin_client.get(reverse("admin:queryopt_indexhint_add")).status_code == 200
    assert admin_client.get(reverse("admin:queryopt_queryplan_add")).status_code == 403


def test_it_saves_a_hint_with_its_columns_as_a_list_and_its_author(
    admin_client: Any, admin_user: Any, rows: dict[str, Any]
) -> None:
    data = {"table": "public.Orders", "columns": " placed_at,Customer_ID ", "kind": "rejected"}
    response = admin_client.post(reverse("admin:queryopt_indexhint_add"), data)
    assert response.status_code == 302
    hint = IndexHint.objects.get(table="public.orders")
    assert (hint.columns, hint.kind, hint.target) == (
        ["placed_at", "customer_id"],
        HintKind.REJECTED,
        None,
    )
    assert hint.created_by == admin_user.get_username()
    page = admin_client.get(reverse("admin:queryopt_indexhint_change", args=[hint.pk]))
    assert page.context["adminform"].form.initial["columns"] == "placed_at, customer_id"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("customer id", "columns: 'customer id' is not a column name"),
        ("customer,,placed", "columns: give one or more column names separated by commas"),
        ("1st", "columns: '1st' is not a column name"),
        ("a, a", "columns: a column may appear only once"),
    ],
)
def test_it_rejects_bad_columns_with_an_error_on_that_field(
    admin_client: Any, db: Any, columns: str, message: str
) -> None:
    data = {"table": "orders", "columns": columns, "kind": "preferred"}
    response = admin_client.post(reverse("admin:queryopt_indexhint_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["columns"]
    assert errors["columns"][0].startswith(message)
    assert not IndexHint.objects.exists()


def test_it_dismisses_only_open_recommendations(admin_client: Any, rows: dict[str, Any]) -> None:
    recommendation = rows["indexrecommendation"]
    response = admin_client.post(
        reverse("admin:queryopt_indexrecommendation_changelist"),
        {"action": "dismiss", "_selected_action": [recommendation.pk]},
    )
    assert response.status_code == 302
    recommendation.refresh_from_db()
    assert recommendation.status == RecommendationStatus.DISMISSED
