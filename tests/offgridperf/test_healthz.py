from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import closed_port

pytestmark = pytest.mark.django_db


def test_it_reports_all_services_up(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


def test_it_names_an_unreachable_broker(client: Any) -> None:
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def test_it_names_an_unreachable_cache(client: Any, settings: Any) -> None:
    from django.core.cache import caches

    dead = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}
    dead["OPTIONS"] = {**dead["OPTIONS"], "CONNECTION_POOL_KWARGS": {"max_connections": 2}}
    settings.CACHES = {"default": dead}
    try:
        response = client.get("/healthz")
    finally:
        caches.close_all()
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["cache"]
    assert body["checks"]["cache"]["ok"] is False
    assert "127.0.0.1" not in response.content.decode()


def test_it_needs_no_login_and_is_never_cached(client: Any) -> None:
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_it_reports_the_database_up_while_requests_hold_every_pooled_connection() -> None:
    # 16 busy views on a pool of 10: the probe waits for a pooled connection in vain, yet the
    # database answers. "down" would make a load balancer pull a busy but healthy instance.
    from django.db import connection
    from psycopg_pool import PoolTimeout

    from offgridperf import health

    pool = connection.pool
    held = []
    try:
        while True:
            try:
                held.append(pool.getconn(timeout=0.2))
            except PoolTimeout:
                break
        assert held and pool.get_stats()["pool_size"] == pool.max_size
        probe = health.check_all()["database"]
    finally:
        for conn in held:
            pool.putconn(conn)
    assert probe.ok, probe.error
