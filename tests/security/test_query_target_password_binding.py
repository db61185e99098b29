"""A query target's stored password goes only where it was typed for: keeping the mask while
changing where the connection goes (host, port, database, user or any parameter) is refused,
in the admin and the CLI, and nothing reaches the new address."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queryopt import services, snapshots
from queryopt.dsn import MASK, mask_dsn
from queryopt.models import QueryTarget, SnapshotReason
from tests.queryopt.fakepg import FakePostgres
from tests.queryopt.targets.conftest import PASSWORD

pytestmark = pytest.mark.django_db
REFUSAL = "enter the password again: the connection changed"


@pytest.fixture
def fake() -> Iterator[FakePostgres]:
    with FakePostgres() as server:
        yield server


@pytest.fixture
def target(db: Any) -> QueryTarget:
    dsn = make_conninfo("", host="127.0.0.1", port=5432, dbname="shop", user="tuner")
    return QueryTarget.objects.create(name="shop", dsn=make_conninfo(dsn, password=PASSWORD))


def masked_with(target: QueryTarget, **changes: Any) -> str:
    return make_conninfo(mask_dsn(target.dsn), **changes)


def post_admin(client: Any, target: QueryTarget, dsn: str) -> Any:
    url = reverse("admin:queryopt_querytarget_change", args=[target.pk])
    data = {
        "name": target.name,
        "dsn": dsn,
        "slow_threshold_ms": "100",
        "polling_interval_s": "60",
        "enabled": "on",
    }
    return client.post(url, data)


def try_to_reach(target: QueryTarget) -> None:
    target.refresh_from_db()
    # Only what the fake server received matters here, not how the snapshot ended.
    with contextlib.suppress(Exception):
        snapshots.take_snapshot(target, SnapshotReason.MANUAL)


def test_the_admin_refuses_a_new_port_with_the_masked_password_and_sends_nothing(
    admin_client: Any, target: QueryTarget, fake: FakePostgres
) -> None:
    stored = target.dsn
    response = post_admin(admin_client, target, masked_with(target, port=fake.port))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["dsn"]
    assert any(REFUSAL in error for error in errors)
    target.refresh_from_db()
    assert target.dsn == stored
    try_to_reach(target)
    assert not fake.password_received


@pytest.mark.parametrize(
    "change",
    [{"host": "localhost"}, {"dbname": "postgres"}, {"user": "postgres"}, {"sslmode": "disable"}],
)
def test_the_admin_refuses_any_other_change_of_where_the_connection_goes(
    admin_client: Any, target: QueryTarget, change: dict[str, str]
) -> None:
    stored = target.dsn
    response = post_admin(admin_client, target, masked_with(target, **change))
    assert response.status_code == 200
    assert any(REFUSAL in error for error in response.context["adminform"].form.errors["dsn"])
    target.refresh_from_db()
    assert target.dsn == stored


def test_the_admin_keeps_the_password_when_only_the_mask_comes_back_unchanged(
    admin_client: Any, target: QueryTarget
) -> None:
    # The same connection written as a URL is the same connection.
    url = f"postgresql://tuner:{MASK}@127.0.0.1:5432/shop"
    assert post_admin(admin_client, target, url).status_code == 302
    target.refresh_from_db()
    assert conninfo_to_dict(target.dsn)["password"] == PASSWORD


def test_the_admin_takes_a_new_address_with_a_password_typed_again(
    admin_client: Any, target: QueryTarget, fake: FakePostgres
) -> None:
    response = post_admin(admin_client, target, masked_with(target, port=fake.port, password="x"))
    assert response.status_code == 302
    target.refresh_from_db()
    try_to_reach(target)
    assert fake.passwords == ["x"]  # the one typed for it, never the old one


def test_the_cli_refuses_a_new_address_with_the_masked_password(
    target: QueryTarget, fake: FakePostgres
) -> None:
    stored = target.dsn
    with pytest.raises(CommandError) as refused:
        dsn = masked_with(target, port=fake.port)
        call_command("queryopt", "target", "set", "shop", "--dsn", dsn)
    assert REFUSAL in str(refused.value)
    target.refresh_from_db()
    assert target.dsn == stored
    try_to_reach(target)
    assert not fake.password_received


def test_the_service_refuses_it_for_every_caller(target: QueryTarget, fake: FakePostgres) -> None:
    with pytest.raises(services.TargetProblem, match=REFUSAL):
        services.change_target_dsn(target, masked_with(target, port=fake.port))
