"""Fault injection: the whole product (`manage.py runall`: web, worker, beat, target) on its own
Redis (cache and broker on one server, the README's setup) and the test database, with
probes that ask the web and the target every 100 ms from threads while a fault is injected.

One runall serves the module's scenarios (starting it costs seconds); each scenario waits
until every process answers again before it starts, so a fault cannot leak into the next.
Each scenario reports one line (longest gaps, time until the run's state was right), printed
in pytest's terminal summary and written to <basetemp>/faults-report.txt.
"""

from __future__ import annotations

import http.cookiejar
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, WorkerHeartbeat
from tests.cache_redis import PrivateRedis
from tests.conftest import ROOT, closed_port, worker_env
from tests.processes import Runall, answers, wait_for

START_TIMEOUT_S = 120
PROBE_EVERY_S = 0.1
PROBE_TIMEOUT_S = 2.0
ADMIN_PASSWORD = "pw-faults-123"
API_TOKEN = "faults-api-token-0123456789"
REPORT_KEY = pytest.StashKey[list[str]]()


class Prober:
    """Asks `url` every 100 ms on a thread; the longest stretch without an answer is the gap."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe {url}", daemon=True)
        self.started = self.stopped = 0.0

    def __enter__(self) -> Prober:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.stopped = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            if answers(self.url, PROBE_TIMEOUT_S):
                self.answered.append(time.monotonic())
            else:
                self.failures += 1
            self._stop.wait(max(0.0, asked + PROBE_EVERY_S - time.monotonic()))

    @property
    def longest_gap_s(self) -> float:
        times = [self.started, *self.answered, self.stopped or time.monotonic()]
        return max(later - earlier for earlier, later in zip(times, times[1:], strict=False))


class WebSession:
    """A logged-in browser session on the web process: plain HTTP, cookies and CSRF."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def _csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")

    def login(self, username: str, password: str) -> None:
        with self.opener.open(f"{self.base_url}/accounts/login/", timeout=10) as page:
            html = page.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        status, location = self.post(
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token},
        )
        assert status == 302 and "login" not in location, (status, location)

    def post(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        """POST a form; the status and the Location it redirects to (no redirect followed)."""
        form = {"csrfmiddlewaretoken": self._csrf(), **(data or {})}
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers.get("Location", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", "")

    def run_now(self, definition: LoadTestDefinition) -> LoadTestRun:
        """Press "Run now" on the definition's page; the run it created."""
        before = set(LoadTestRun.objects.filter(definition=definition).values_list("pk", flat=True))
        status, location = self.post(f"/definitions/{definition.pk}/run/")
        assert status == 302, f"Run now answered {status}"
        run = LoadTestRun.objects.filter(definition=definition).exclude(pk__in=before).get()
        assert location.endswith(f"/runs/{run.pk}/"), location
        return run


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Product(Runall):
    """The product under runall, on a private Redis (cache and broker) and the test database."""

    redis: PrivateRedis | None = None

    @property
    def web_probe_url(self) -> str:
        # The login page: what a user sees first, and it needs neither the cache nor the broker.
        return f"{self.web_url}/accounts/login/"

    @property
    def target_probe_url(self) -> str:
        # A cached API read: it must keep answering with the cache degraded.
        return f"{self.target_url}/api/emissions/totals/?group_by=scope"

    def node(self, name: str) -> str:
        """The Celery node name of runall's worker `name` (loadgen or worker)."""
        return f"{name}@{socket.gethostname()}"

    def worker_ready(self, name: str) -> bool:
        worker = self.child(name)
        return (
            worker is not None
            and WorkerHeartbeat.objects.filter(node=self.node(name), pid=worker.pid).exists()
        )

    def missing(self) -> list[str]:
        """What of the product is not yet up: empty once every process answers."""
        if self.proc.poll() is not None:
            return ["runall (exited)"]
        checks = {
            "web": lambda: answers(self.web_probe_url),
            "target": lambda: answers(self.target_probe_url),
            "loadgen heartbeat": lambda: self.worker_ready("loadgen"),
            "worker heartbeat": lambda: self.worker_ready("worker"),
            "beat": lambda: self.child("beat") is not None,
        }
        return [name for name, check in checks.items() if not check()]

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        try:
            wait_for(lambda: not self.missing(), timeout_s, "every product process answering")
        except AssertionError as exc:
            missing = self.missing()
            # The lines of the processes still missing first: the others fill the log.
            names = {name.split()[0] for name in missing}
            theirs = [
                line for line in self.quiet_output().splitlines()
                if line.strip().split(" |")[0] in names
            ]  # fmt: skip
            raise AssertionError(
                f"{exc}; still missing: {', '.join(missing)}\n"
                f"--- their output ---\n" + "\n".join(theirs)[-6000:] + "\n"
                f"--- runall output (requests left out) ---\n{self.quiet_output()[-3000:]}"
            ) from None
        self.descendants()


@pytest.fixture(scope="module")
def product(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Product]:
    from django.db import connection

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    redis = PrivateRedis()
    redis.start()
    env = worker_env(database_name)
    env.update(
        REDIS_URL=redis.url,
        CELERY_BROKER_URL=redis.url,  # one server for both, as in the README
        PORT=str(closed_port()),
        TARGET_PORT=str(closed_port()),
        OFFGRIDPERF_LOCAL="1",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        EMISSIONS_API_TOKEN=API_TOKEN,
        # Its own var/ (secrets, collected static files): the web runs as in production, with
        # DEBUG off and hashed static names, and leaves the checkout's var/ alone.
        OFFGRIDPERF_VAR_DIR=str(tmp_path_factory.mktemp("faults-var")),
        DEBUG="0",
        # The product outlives each test, whose teardown truncates every table: query capture
        # writing its windows from the readiness probes meanwhile deadlocked that TRUNCATE.
        # These tests are about runs riding out faults; capture has its own tests.
        QUERYOPT_CAPTURE="0",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    log = tmp_path_factory.mktemp("faults") / "runall.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runall"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Product(proc, int(env["PORT"]), int(env["TARGET_PORT"]), log, redis=redis)
    try:
        yield running
    finally:
        running.stop()
        redis.stop()


@pytest.fixture
def ready_product(product: Product, transactional_db: Any) -> Product:
    """The product with every process answering (a scenario before may have killed one)."""
    product.wait_ready()
    return product


@pytest.fixture
def web(ready_product: Product, django_user_model: Any) -> WebSession:
    django_user_model.objects.create_superuser("faults", "faults@example.com", ADMIN_PASSWORD)
    session = WebSession(ready_product.web_url)
    session.login("faults", ADMIN_PASSWORD)
    return session


def open_model_definition(
    product: Product, *, name: str, rate_rps: float = 30, duration_s: int = 20
) -> LoadTestDefinition:
    """An open-model run against the target's cheap emissions reads (no seeded data needed).

    An explicit error-rate threshold of 50% means a few seconds of outage in 20 cannot fail
    it, whatever the machine's speed: the schedule decides the verdict, not a rate.
    """
    definition = LoadTestDefinition.objects.create(
        name=name,
        target_base_url=product.target_url,
        load_model="open",
        rate_rps=rate_rps,
        duration_s=duration_s,
        timeout_s=3,
        threshold_error_rate_pct=50,
    )
    LoadTestStep.objects.create(
        definition=definition, name="totals", path="/api/emissions/totals/?group_by=scope"
    )
    LoadTestStep.objects.create(definition=definition, name="batches", path="/api/batches/")
    return definition


def post_to_target(product: Product, path: str) -> int:
    """POST to the target's write API with its token; the status it answered."""
    request = urllib.request.Request(
        f"{product.target_url}{path}",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def recorded_indexes(run: LoadTestRun) -> list[int]:
    return list(run.intervals.order_by("index").values_list("index", flat=True))


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report one line for this scenario: in the terminal summary and in faults-report.txt."""

    def report(line: str) -> None:
        text = f"{request.node.name}: {line}"
        request.config.stash.setdefault(REPORT_KEY, []).append(text)
        request.node.user_properties.append(("fault_report", line))
        path = request.config._tmp_path_factory.getbasetemp() / "faults-report.txt"  # type: ignore[attr-defined]
        with path.open("a") as out:
            out.write(text + "\n")

    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT_KEY, [])
    if lines:
        terminalreporter.section("fault injection")
        for line in lines:
            terminalreporter.write_line(line)
