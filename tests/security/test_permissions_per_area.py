"""Seeing needs the area's view permission: a logged-in user without permissions gets the
no-access page (naming the permission and whom to ask) on every page but the overview and
the account pages, the API refuses a token without the view permission, and the viewers group
sees every page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone

from loadtests.models import ApiToken, LoadTestDefinition, LoadTestRun, RunStatus
from offgridperf import access
from profiling.models import CaptureKind, CaptureStatus, ProfileCapture
from queryopt.models import QueryShape, QueryTarget
from tests.offgridperf.test_login_required import PUBLIC, walk

pytestmark = pytest.mark.django_db

# Pages every logged-in user may open: the overview (it shows only the areas one may see) and
# the account pages. The admin keeps Django's own rule (staff, then the model's permissions)
# and the API answers in JSON (checked below).
OPEN_TO_EVERY_USER = {"", "accounts/logout/"}


def every_url() -> list[str]:
    return sorted(set(walk(get_resolver().url_patterns)))


def area_urls() -> list[str]:
    return [
        url
        for url in every_url()
        if url not in PUBLIC | OPEN_TO_EVERY_USER
        and not url.startswith(("static/", "admin/", "api/", "__debug__/"))
    ]


def test_a_user_without_permissions_is_refused_every_page_but_the_overview(
    no_permission_client: Client, admin_user: Any
) -> None:
    urls = area_urls()
    assert len(urls) > 20
    for url in urls:
        response = no_permission_client.get("/" + url)
        assert response.status_code == 403, f"/{url} answered {response.status_code}"
        body = response.content.decode()
        assert "view_" in body, f"/{url} does not name the missing permission"
        # Whom to ask: the admins by username.
        assert admin_user.username in body, f"/{url} does not say whom to ask"


def test_the_overview_shows_a_user_without_permissions_no_area_and_whom_to_ask(
    no_permission_client: Client, admin_user: Any
) -> None:
    LoadTestDefinition.objects.create(name="secret-definition", target_base_url="http://x.test")
    response = no_permission_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "secret-definition" not in body
    assert "may not see any area" in body and admin_user.username in body
    for label in ("Load tests</a>", "Profiles</a>", "Queries</a>", "Cache</a>"):
        assert label not in body


def test_the_overview_lists_only_the_areas_a_user_may_see(
    no_permission_client: Client, no_permission_user: Any
) -> None:
    from django.contrib.auth.models import Permission

    no_permission_user.user_permissions.add(Permission.objects.get(codename="view_profilecapture"))
    body = no_permission_client.get("/").content.decode()
    assert 'href="/profiles/"' in body
    assert 'href="/queries/"' not in body and 'href="/cache/"' not in body
    assert no_permission_client.get("/profiles/").status_code == 200
    assert no_permission_client.get("/queries/").status_code == 403


def test_the_no_access_page_names_a_configured_contact(
    no_permission_client: Client, settings: Any
) -> None:
    settings.ACCESS_CONTACT = "perf-team@example.com"
    response = no_permission_client.get("/queries/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "queryopt.view_queryshape" in body
    assert "perf-team@example.com" in body


def test_the_api_refuses_reading_to_a_token_without_the_view_permission(
    no_permission_user: Any,
) -> None:
    definition = LoadTestDefinition.objects.create(name="smoke", target_base_url="http://x.test")
    run = LoadTestRun.objects.create(definition=definition, name="smoke", config={})
    token = ApiToken(user=no_permission_user, name="ci")
    secret = token.set_new_token()
    token.save()
    headers = {"Authorization": f"Bearer {secret}"}
    client = Client()
    for url, permission in (
        (f"/api/v1/runs/{run.pk}/", access.VIEW_RUNS),
        ("/api/v1/definitions/smoke/", access.VIEW_DEFINITIONS),
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 403, url
        assert response.json() == {"error": f"You need the permission {permission}."}
    access.ensure_groups()
    no_permission_user.groups.add(Group.objects.get(name=access.VIEWERS))
    assert client.get(f"/api/v1/runs/{run.pk}/", headers=headers).status_code == 200
    assert client.get("/api/v1/definitions/smoke/", headers=headers).status_code == 200
    # Seeing is not acting.
    started = client.post(
        "/api/v1/runs/", data={"definition": "smoke"}, content_type="application/json",
        headers=headers,
    )  # fmt: skip
    assert started.status_code == 403


def test_the_viewers_group_sees_every_page(viewer_client: Client) -> None:
    definition = LoadTestDefinition.objects.create(name="smoke", target_base_url="http://x.test")
    now = timezone.now()
    run = LoadTestRun.objects.create(
        definition=definition, name="smoke", config={}, status=RunStatus.PASSED,
        started_at=now, finished_at=now,
    )  # fmt: skip
    capture = ProfileCapture.objects.create(
        kind=CaptureKind.THREADS, pid=4242, status=CaptureStatus.DONE
    )
    target = QueryTarget.objects.create(name="shop", dsn="postgresql://shop@127.0.0.1:1/shop")
    shape = QueryShape.objects.create(target=target, fingerprint="abc", query_text="SELECT 1")
    pages = [
        "/",
        f"/definitions/{definition.pk}/",
        f"/definitions/{definition.pk}/document.json",
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/summary.json",
        f"/runs/{run.pk}/intervals.csv",
        "/runs/running.json",
        "/profiles/",
        f"/profiles/{capture.pk}/",
        "/queries/",
        f"/queries/{shape.pk}/",
        "/cache/",
    ]
    for page in pages:
        response = viewer_client.get(page)
        assert response.status_code == 200, f"{page} answered {response.status_code}"
    body = viewer_client.get("/").content.decode()
    for label in ("Load tests</a>", "Profiles</a>", "Queries</a>", "Cache</a>"):
        assert label in body
    # An action refused names its permission too, and whom to ask.
    refused = viewer_client.get("/cache/query/invalidate/")
    assert refused.status_code == 403
    assert "offgridperf.invalidate_cache" in refused.content.decode()
    assert 'id="whom-to-ask"' in refused.content.decode()
    # Every other page of an area answers the viewer, or refuses an action, never for seeing.
    for url in area_urls():
        response = viewer_client.get("/" + url)
        if response.status_code == 403:
            assert "view_" not in response.content.decode(), f"/{url} refused seeing"


def test_a_run_page_shows_only_the_panels_of_areas_the_user_may_see(
    no_permission_client: Client, no_permission_user: Any
) -> None:
    from django.contrib.auth.models import Permission

    from offgridperf import panels

    now = timezone.now()
    run = LoadTestRun.objects.create(
        name="smoke", config={}, status=RunStatus.PASSED, started_at=now, finished_at=now
    )
    ProfileCapture.objects.create(
        kind=CaptureKind.THREADS, pid=4242, status=CaptureStatus.DONE, run=run
    )
    no_permission_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_loadtestrun", "view_loadtestdefinition"])
    )
    shown = {panel["name"] for panel in panels.run_panels(run)}
    assert {"profiles", "queries"} <= shown  # without a request: every panel (CLI, tests)
    response = no_permission_client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    names = {panel["name"] for panel in response.context["panels"]}
    assert not names & {"profiles", "queries"}
