from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from emissions import services
from offgridperf import cache
from tests.cache_redis import PrivateRedis, private_redis_server
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv

READS = [
    "/api/batches/degraded/",
    "/api/batches/degraded/activities/",
    "/api/emissions/totals/?group_by=scope",
    "/api/activities/?scope=3",
]


@pytest.fixture
def private_redis(settings: Any) -> Iterator[PrivateRedis]:
    with private_redis_server() as server:
        settings.CACHES = server.caches()
        cache.clear_all()
        yield server


def test_endpoints_keep_answering_while_redis_is_down_and_recover(
    api: Any,
    auth: dict[str, str],
    factors: Any,
    private_redis: PrivateRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "BACKOFF_S", 0.3)
    batch_id = upload_csv(api, auth, csv_text(KNOWN_ROWS), reference="degraded").json()["id"]
    services.calculate(batch_id)
    healthy = {path: api.get(path).json() for path in READS}
    assert cache.key_counts()["emissions"] == 1

    private_redis.stop()
    for _ in range(2):
        for path in READS:
            response = api.get(path)
            assert response.status_code == 200
            assert response.json() == healthy[path]
    # Writes keep working too; their invalidation is skipped while Redis is away.
    response = upload_csv(api, auth, csv_text(KNOWN_ROWS[:1]))
    assert response.status_code == 201
    assert not cache.state().reachable

    private_redis.start()  # empty: it kept nothing
    time.sleep(0.4)
    for path in READS:
        assert api.get(path).json() == healthy[path]
    assert cache.state().reachable
    assert cache.key_counts()["emissions"] == 1  # caching again
    cache.reset_metrics(["emissions"])
    api.get(READS[2])
    assert cache.figures()["emissions"].counters["hits"] == 1
