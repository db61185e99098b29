"""`bootstrap` creates the documented groups: viewers see every area and change nothing,
engineers also run, define, capture, set query targets and make tokens, admins hold every
permission. Running it again changes nothing and keeps what an admin added by hand."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client

from offgridperf import access

pytestmark = pytest.mark.django_db


def names(group: str) -> set[str]:
    found = Group.objects.get(name=group).permissions.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}" for p in found}


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", "--no-static", stdout=out)
    return out.getvalue()


def test_bootstrap_creates_the_three_groups_once_and_keeps_hand_made_additions(
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("OFFGRIDPERF_ADMIN_PASSWORD", "from-the-env-42")
    assert "groups: viewers +" in bootstrap()
    viewers, engineers, admins = names("viewers"), names("engineers"), names("admins")
    area_views = {access.VIEW_DEFINITIONS, access.VIEW_RUNS, access.VIEW_QUERIES,
                  access.VIEW_PROFILES, access.VIEW_CACHE}  # fmt: skip
    assert area_views <= viewers
    assert all(".view_" in name for name in viewers)
    assert "loadtests.view_apitoken" not in viewers
    assert viewers < engineers < admins
    assert {"loadtests.add_loadtestrun", "loadtests.change_loadtestdefinition",
            "profiling.add_profilecapture", "queryopt.change_querytarget",
            "loadtests.add_apitoken"} <= engineers  # fmt: skip
    # Registering targets and capturing any process, and invalidating the cache, are the
    # admins' only.
    only_admins = (
        "profiling.add_profiletarget",
        "profiling.change_profiletarget",
        "profiling.capture_any_process",
        "offgridperf.invalidate_cache",
    )
    for permission in only_admins:
        assert permission in admins and permission not in engineers
    assert len(admins) == Permission.objects.count()

    extra = Permission.objects.get(codename="invalidate_cache")
    Group.objects.get(name="viewers").permissions.add(extra)
    again = bootstrap()
    assert "groups: viewers +0, engineers +0, admins +0 permissions" in again
    assert Group.objects.filter(name__in=["viewers", "engineers", "admins"]).count() == 3
    assert names("viewers") == viewers | {"offgridperf.invalidate_cache"}


def test_a_member_of_the_admins_group_is_named_on_the_no_access_page(
    django_user_model: Any, no_permission_client: Client
) -> None:
    access.ensure_groups()
    alice = django_user_model.objects.create_user("alice-admin", "a@example.com", "pw-a-12345")
    alice.groups.add(Group.objects.get(name="admins"))
    django_user_model.objects.create_user("bob-engineer").groups.add(
        Group.objects.get(name="engineers")
    )
    body = no_permission_client.get("/cache/").content.decode()
    assert "offgridperf.view_cache" in body
    assert "alice-admin" in body and "bob-engineer" not in body
