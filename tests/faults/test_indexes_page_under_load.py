"""16 concurrent views of the Indexes page of a target that never answers, on a real threaded
server: every view returns the stored state, none opens a connection to the target, and
/healthz keeps answering throughout."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client

from queryopt.models import QueryTarget
from tests.faults.conftest import Prober
from tests.queryopt.fakepg import FakePostgres

VIEWS = 16
VIEW_TIMEOUT_S = 30.0  # a bound for a loaded machine; a view that connected would hang longer


def test_indexes_page_views_never_reach_a_hanging_target_and_healthz_answers(
    live_server: Any, django_user_model: Any, fault_report: Any
) -> None:
    with FakePostgres(silent=True) as hanging:
        dsn = f"host=127.0.0.1 port={hanging.port} dbname=shop user=tuner password=pw"
        target = QueryTarget.objects.create(name="hangs", dsn=dsn)
        # A viewer of queries: the least a user needs to reach the page at all.
        user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
        user.user_permissions.add(Permission.objects.get(codename="view_queryshape"))
        client = Client()
        client.force_login(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        url = f"{live_server.url}/queries/indexes/?target={target.pk}"

        def view(_: int) -> tuple[int, str]:
            request = urllib.request.Request(url, headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=VIEW_TIMEOUT_S) as response:
                return response.status, response.read().decode()

        with Prober(f"{live_server.url}/healthz") as health, ThreadPoolExecutor(VIEWS) as pool:
            answers = list(pool.map(view, range(VIEWS)))
        assert [status for status, _ in answers] == [200] * VIEWS
        assert all("Not read from hangs yet" in body for _, body in answers)
        assert hanging.connections == 0
        assert health.failures == 0 and health.answered
        fault_report(
            f"indexes page x{VIEWS} on a hanging target: 0 target connections, "
            f"/healthz longest gap {health.longest_gap_s:.2f} s"
        )
