"""The Cache page's permission belongs to the tool (offgridperf.invalidate_cache), and the
migration that moved it from emissions.ActivityBatch kept every grant."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from emissions.models import ActivityBatch

BEFORE = [("emissions", "0002_activity_date_brin")]
NAME = "Can invalidate cache strategies and reset cache metrics"


def migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def cache_permissions() -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(codename="invalidate_cache").values_list(
            "content_type__app_label", "codename"
        )
    }


@pytest.mark.django_db
def test_it_declares_the_permission_on_the_tool_only() -> None:
    assert cache_permissions() == {"offgridperf.invalidate_cache"}


@pytest.mark.django_db
def test_a_user_with_the_tool_permission_may_invalidate(
    client: Any, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("operator", "op@example.com", "pw-op-123456")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_cache", "invalidate_cache"])
    )
    client.force_login(user)
    assert client.get("/cache/query/invalidate/").status_code == 200
    assert client.post("/cache/query/invalidate/", {"confirm": "on"}).status_code == 302


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_every_grant_to_the_tool_permission_and_back(
    django_user_model: Any,
) -> None:
    migrate(BEFORE)
    # The database as it was before: the permission on ActivityBatch, granted to a user and to
    # a group, and no tool permission yet.
    Permission.objects.filter(content_type__app_label="offgridperf").delete()
    old, _ = Permission.objects.get_or_create(
        codename="invalidate_cache",
        content_type=ContentType.objects.get_for_model(ActivityBatch),
        defaults={"name": NAME},
    )
    operator = django_user_model.objects.create_user("operator", "op@example.com", "pw-123456")
    operator.user_permissions.add(old)
    group = Group.objects.create(name="operators")
    group.permissions.add(old)
    member = django_user_model.objects.create_user("member", "m@example.com", "pw-123456")
    member.groups.add(group)
    bystander = django_user_model.objects.create_user("bystander", "b@example.com", "pw-123456")

    migrate()

    assert cache_permissions() == {"offgridperf.invalidate_cache"}
    for user, allowed in ((operator, True), (member, True), (bystander, False)):
        fresh = django_user_model.objects.get(pk=user.pk)  # no cached permissions
        assert fresh.has_perm("offgridperf.invalidate_cache") is allowed, user.username
        assert not fresh.has_perm("emissions.invalidate_cache")

    migrate(BEFORE)

    assert cache_permissions() == {"emissions.invalidate_cache"}
    for user, allowed in ((operator, True), (member, True), (bystander, False)):
        fresh = django_user_model.objects.get(pk=user.pk)
        assert fresh.has_perm("emissions.invalidate_cache") is allowed, user.username

    migrate()
    assert cache_permissions() == {"offgridperf.invalidate_cache"}
