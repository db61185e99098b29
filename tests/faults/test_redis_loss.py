"""Losing the cache's Redis costs a request the source's time plus a few milliseconds: the
cache layer's circuit breaker skips Redis while it is down and lets one request at a time
probe it, so the requests do not each wait for a connection timeout.

The emissions target's cached endpoints are served in-process, from several threads at once,
on a Redis of the test's own with the product's Redis settings (timeouts, retries). The
outage is the worst kind: the port still accepts connections but nothing ever answers (a
hung or overloaded Redis; a stopped one refuses at once, which is cheaper), so each attempt
costs a full timeout and the attempts can be counted as they arrive.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from emissions import services
from emissions.models import EmissionFactor
from offgridperf import cache
from tests.cache_redis import PrivateRedis, private_redis_server
from tests.emissions.conftest import KNOWN_ROWS, csv_text, upload_csv

READS = [
    "/api/emissions/totals/?group_by=scope",
    "/api/batches/redis-loss/",
    "/api/activities/?scope=3",
]
THREADS = 4
OUTAGE_S = 3.0


class SilentServer:
    """Listens on a port, accepts every connection and never answers; counts them."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def product_redis(settings: Any) -> Iterator[PrivateRedis]:
    """A private Redis under the product's own cache settings (not the tests' short ones)."""
    with private_redis_server() as server:
        caches = copy.deepcopy(settings.CACHES)
        caches["default"]["LOCATION"] = server.url
        settings.CACHES = caches
        settings.ROOT_URLCONF = "emissions.api_urls"
        cache.reset_process_state()
        cache.clear_all()
        yield server
    cache.reset_process_state()


def hammer(seconds: float) -> tuple[list[float], list[tuple[str, int, Any]]]:
    """THREADS threads reading READS in turn for `seconds`: every latency, every answer."""
    latencies: list[float] = []
    answers: list[tuple[str, int, Any]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def reader() -> None:
        client = Client()
        try:
            n = 0
            while time.monotonic() < deadline:
                path = READS[n % len(READS)]
                n += 1
                started = time.perf_counter()
                response = client.get(path)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    answers.append((path, response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reader) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, answers


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(0.95 * (len(ordered) - 1))]


@pytest.fixture
def seeded(transactional_db: Any, settings: Any) -> dict[str, Any]:
    """A calculated batch; the healthy answer of each read."""
    for activity_type, unit, value in [
        ("electricity_grid", "kWh", "0.2"),
        ("air_short_haul", "passenger_km", "0.15"),
    ]:
        EmissionFactor.objects.create(
            activity_type=activity_type,
            unit=unit,
            kg_co2e_per_unit=Decimal(value),
            valid_from=date(2023, 1, 1),
            source="test",
        )
    client = Client()
    auth = {"Authorization": f"Bearer {settings.EMISSIONS_API_TOKEN}"}
    batch = upload_csv(client, auth, csv_text(KNOWN_ROWS), reference="redis-loss").json()
    services.calculate(batch["id"])
    return {path: client.get(path).json() for path in READS}


def test_a_hung_redis_costs_one_connection_attempt_per_open_interval_and_no_wrong_answer(
    product_redis: PrivateRedis,
    seeded: dict[str, Any],
    settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, healthy_answers = hammer(0.5)
    assert all(status == 200 for _, status, _ in healthy_answers)
    settings.CACHE_ENABLED = False
    cache_off_latencies, _ = hammer(1.5)
    settings.CACHE_ENABLED = True

    product_redis.stop()
    silent = SilentServer(product_redis.port)
    try:
        started = time.monotonic()
        outage_latencies, outage_answers = hammer(OUTAGE_S)
        elapsed = time.monotonic() - started
        attempts = silent.connections
    finally:
        silent.close()

    for path, status, body in outage_answers:
        assert status == 200, (path, body)
        assert body == seeded[path], path
    # Requests in flight when Redis went away may each try once; after that one probe per
    # open interval (BACKOFF_S), whatever the number of requests.
    bound = THREADS + int(elapsed / cache.BACKOFF_S) + 2
    assert attempts <= bound, (
        f"{attempts} connection attempts to the hung Redis in {elapsed:.1f} s "
        f"for {len(outage_answers)} requests (at most {bound} expected)"
    )
    assert not cache.state().reachable

    # The latencies are shown, not judged: how many requests a loaded machine serves in the
    # outage decides what share the few that met the hung Redis are of the p95.
    off, during = p95(cache_off_latencies), p95(outage_latencies)
    with capsys.disabled():
        print(
            f"\nRedis hung {elapsed:.1f} s: {len(outage_answers)} requests, {attempts} connection "
            f"attempts; p95 {during * 1000:.1f} ms (cache off: {off * 1000:.1f} ms, "
            f"max {max(outage_latencies) * 1000:.0f} ms)"
        )
