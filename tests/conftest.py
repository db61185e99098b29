"""Fixtures and checks shared by the whole suite.

Nothing here imports Django at module level: the engine's and the statistics' tests
(tests/engine, tests/stats) run without it, and without PostgreSQL or Redis, so `pytest
tests/engine tests/stats` works on any machine with the dependencies installed. Every other test
directory uses Django, and runs against the real PostgreSQL and Redis only: the check below
refuses a run that collected one of their tests while the settings point at SQLite or the
local-memory cache.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tls import HttpsTarget, https_target_server

ROOT = Path(__file__).resolve().parent.parent

# Test directories that need neither Django's database nor Redis (keep them free of Django):
# the engine's, the stats package's, and each app's tests of its pure modules (tests/<app>/pure).
STANDALONE_DIRS = (
    ROOT / "tests" / "engine",
    ROOT / "tests" / "stats",
    *sorted((ROOT / "tests").glob("*/pure")),
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """Parallel runs (pytest-xdist): each worker process, and every process it starts,
    gets a Redis key prefix of its own (the cache, its figures, the throttles, the broker's
    queues and broadcasts), as installations sharing one Redis do. pytest-django already
    gives each worker a test database of its own (test_<name>_gw0, ...)."""
    shared = os.environ.get("REDIS_KEY_PREFIX", "")
    for spec in specs:
        # Set in the worker before it starts pytest, so before Django reads its settings.
        spec.env["REDIS_KEY_PREFIX"] = f"{shared}{spec.id}:"


# Parallel runs migrate one template database, once, and each worker's test database is a copy
# of it (CREATE DATABASE ... TEMPLATE: a fraction of a second) rather than a migration of its
# own (some 7 s of CPU each, all workers at once at the start of the run).
TEMPLATE_ENV = "OFFGRIDPERF_TEST_DATABASE_TEMPLATE"


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def _database_url(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _template_database(url: str) -> str:
    from urllib.parse import urlsplit

    name = urlsplit(url).path.lstrip("/")
    return f"test_{name}_template"[:63]


def _drop_database(url: str, name: str, *, create_again: bool = False) -> None:
    import psycopg
    from psycopg import sql

    database = sql.Identifier(name)
    with psycopg.connect(_database_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        if create_again:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(database))


_TEMPLATE_KEY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not (_is_xdist_controller(config) and url.startswith(("postgres://", "postgresql://"))):
        return
    template = _template_database(url)
    _drop_database(url, template, create_again=True)  # a failed run's may be left
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": _database_url(url, template)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise pytest.UsageError(f"migrating the test template database failed:\n{result.stderr}")
    os.environ[TEMPLATE_ENV] = template  # the workers inherit it
    config.stash[_TEMPLATE_KEY] = template


def pytest_unconfigure(config: pytest.Config) -> None:
    template = config.stash.get(_TEMPLATE_KEY, None)
    if template:
        _drop_database(os.environ["DATABASE_URL"], template)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A worker's test database starts as a copy of the run's migrated template, if any."""
    template = os.environ.get(TEMPLATE_ENV)
    if template:
        from django.conf import settings

        settings.DATABASES["default"].setdefault("TEST", {})["TEMPLATE"] = template


def needs_services(item: pytest.Item) -> bool:
    return not any(item.path.is_relative_to(directory) for directory in STANDALONE_DIRS)


# Runs every standalone test in processes without the services (and the engine's and the stats
# package's without Django): where it is collected, the run deselects the standalone tests, so
# that each runs once.
STANDALONE_RUN = (
    "tests/boundaries/test_engine_alone.py::"
    "test_it_runs_the_pure_tests_without_postgres_redis_or_django"
)


# Tests of PostgreSQL's server-wide pg_stat_statements: one resets it for every database
# (pg_stat_statements_reset(), to prove that snapshots take the new values after a reset), and
# the others take snapshots whose deltas such a reset would upset. In parallel runs
# (`--dist loadgroup`) they form one group, run one after another on one worker.
SERVER_STATE_GROUPS = {
    "pg_stat_statements": (
        "tests/queryopt/targets/",
        "tests/queryopt/indexes/",
        "tests/queryopt/tuning/",
        "tests/queryopt/capture/test_own_target.py",
        "tests/queryopt/test_cli_recommend.py",
        "tests/security/test_query_target_password_binding.py",
    ),
    # The target agent publishes per run id to a Redis key the workbench reads without its own
    # key prefix (the agent knows nothing of it), and every worker's database numbers runs from 1.
    "agent_run_keys": ("tests/agent/",),
    # Whole products (runall) judged by the latency and pace their own reference tests demand:
    # one at a time, so that they do not starve each other of the 2 cores; the default suite's
    # module fixture is also built once instead of once per worker.
    "whole_product": (
        "tests/defaults/",
        "tests/loadtests/flow/test_reference_flow.py",
    ),
}


# Modules whose tests share a costly module-scoped fixture (a whole product, a target server, a
# big table): each module's tests run on one worker, so that it is built once per run rather
# than once per worker that draws one of its tests (a product costs 10 to 25 s of CPU).
MODULE_FIXTURE_PATHS = (
    "tests/faults/",
    "tests/offgridperf/test_metrics.py",
    "tests/emissions/test_chunked_upload.py",
    "tests/queryopt/plans_store/",
)


def server_state_group(nodeid: str) -> str | None:
    """The group of tests that must share a worker that the test `nodeid` belongs to, if any:
    tests of server-wide state, or of one module with a costly module-scoped fixture."""
    for group, paths in SERVER_STATE_GROUPS.items():
        if nodeid.startswith(paths):
            return group
    if nodeid.startswith(MODULE_FIXTURE_PATHS):
        return nodeid.split("::", 1)[0]
    return None


# A parallel run hands out units of work (a group, or one test) in collection order: xdist's
# own order, groups by their number of tests then single tests, except that the engine's tests
# come first. They run in one process for about 95 s, light on the CPU (their load waits on
# sockets); handed out among the single tests, they once ran on alone 45 s after the rest.
# Handing every long unit out first was slower: the whole products then competed for the cores.
FIRST = (STANDALONE_RUN,)


def run_order(nodeid: str, group_sizes: dict[str, int]) -> tuple[int, int]:
    """Where the test `nodeid` comes in a parallel run: FIRST, then the groups, most tests
    first (`group_sizes`: tests per group), then single tests."""
    if nodeid.startswith(FIRST):
        return (0, 0)
    group = server_state_group(nodeid)
    return (1, -group_sizes[group]) if group else (2, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with the groups above: by path, because xdist's own grouping (an
    xdist_group mark that suffixes the node id) does not reach pytest 9's node ids. Units are
    handed out in collection order, which pytest_collection_modifyitems sets (`run_order`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    config.option.loadscopereorder = False  # run_order orders the collection instead

    class ServerStateScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return server_state_group(nodeid) or super()._split_scope(nodeid)

    return ServerStateScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # At collection rather than configure time, so that a run of standalone tests alone is
    # never refused, and a run with a single Django test always is.
    if not any(needs_services(item) for item in items):
        return
    from django.conf import settings

    if not settings.DATABASE_IS_POSTGRES or not settings.REDIS_URL:
        raise pytest.UsageError(
            "the suite runs against the real PostgreSQL and Redis: use `make test` "
            "(or set DATABASE_URL=postgres://... and REDIS_URL=redis://...); only "
            "`pytest tests/engine tests/stats` and `tests/<app>/pure` run without them"
        )
    flush_retries_deadlocks()
    cheap_password_hashes()
    if any(item.nodeid == STANDALONE_RUN for item in items):
        standalone = [item for item in items if not needs_services(item)]
        if standalone:
            config.hook.pytest_deselected(items=standalone)
            items[:] = [item for item in items if needs_services(item)]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        sizes = collections.Counter(server_state_group(item.nodeid) for item in items)
        items.sort(key=lambda item: run_order(item.nodeid, sizes))  # stable


# Django's PBKDF2 iterations make each hash cost about half a second of this machine's CPU,
# and most tests create a user or two: some four minutes of the suite. Hashes made here carry
# their own iteration count, so every process the tests start (servers, workers) still checks
# them with Django's own hasher, and still makes its own hashes at full strength.
TEST_PBKDF2_ITERATIONS = 1_000


def cheap_password_hashes() -> None:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    PBKDF2PasswordHasher.iterations = TEST_PBKDF2_ITERATIONS


def flush_retries_deadlocks() -> None:
    """The flush that empties the database after a transactional test TRUNCATEs every table,
    while the suite's live workers write (heartbeats, captures): PostgreSQL may break the
    deadlock by aborting the flush. Retry it then, as a client retries a deadlocked
    transaction; any other failure stays a failure."""
    from django.core.management.commands import flush
    from psycopg.errors import DeadlockDetected

    handle = flush.Command.handle
    if getattr(handle, "retries_deadlocks", False):
        return

    def deadlocked(exc: BaseException | None) -> bool:
        while exc is not None:
            if isinstance(exc, DeadlockDetected):
                return True
            exc = exc.__cause__ or exc.__context__
        return False

    def handle_retrying(self: Any, **options: Any) -> Any:
        for attempt in range(5):
            try:
                return handle(self, **options)
            except Exception as exc:
                if attempt == 4 or not deadlocked(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None

    handle_retrying.retries_deadlocks = True  # type: ignore[attr-defined]
    flush.Command.handle = handle_retrying  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def fresh_failure_throttles(request: pytest.FixtureRequest) -> None:
    """Throttled failures (bad API tokens) are counted in Redis, outside each test's
    transaction: every test starts with none, whatever the tests before it sent."""
    if needs_services(request.node):
        from offgridperf import throttle

        throttle.clear_all()


@pytest.fixture(autouse=True)
def fresh_query_capture(request: pytest.FixtureRequest) -> None:
    """The query capture keeps counts and row ids in this process between flushes; a test's
    rollback can leave them pointing at rows that no longer exist, and a flush during the next
    test would write them there. Every test starts with none."""
    if needs_services(request.node):
        from queryopt import capture

        capture.reset()


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def admin_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-admin-123")


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    """A user of the viewers group (bootstrap's): sees every area, may change nothing."""
    from django.contrib.auth.models import Group

    from offgridperf import access

    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw-viewer-123")
    access.ensure_groups()
    user.groups.add(Group.objects.get(name=access.VIEWERS))
    return user


@pytest.fixture
def viewer_client(client: Any, viewer: Any) -> Any:
    client.force_login(viewer)
    return client


@pytest.fixture
def no_permission_user(django_user_model: Any) -> Any:
    """A logged-in user without any permission at all."""
    return django_user_model.objects.create_user("nobody", "nobody@example.com", "pw-nobody-123")


@pytest.fixture
def no_permission_client(client: Any, no_permission_user: Any) -> Any:
    client.force_login(no_permission_user)
    return client


def worker_env(database_name: str) -> dict[str, str]:
    """Environment for a subprocess that must see the test database."""
    from django.conf import settings

    env = dict(os.environ)
    db = settings.DATABASES["default"]
    port = f":{db['PORT']}" if db["PORT"] else ""
    auth = db["USER"] + (":" + db["PASSWORD"] if db["PASSWORD"] else "")
    env["DATABASE_URL"] = f"postgres://{auth}@{db['HOST']}{port}/{database_name}"
    env["DJANGO_SETTINGS_MODULE"] = "offgridperf.settings"
    return env


@dataclass
class SessionWorkers:
    """The suite's workers, laid out as in production: a load generator on queue loadgen
    (one load test at a time) and a worker on queue default, so that the demo's and the tool's
    own tasks never queue behind a load test."""

    loadgen: subprocess.Popen[bytes]
    default: subprocess.Popen[bytes]

    @property
    def pids(self) -> tuple[int, int]:
        return self.loadgen.pid, self.default.pid


def loadgen_node() -> str:
    """The session load generator's node name (tests/loadtests/generators.py pauses it)."""
    return f"test-{os.getpid()}@"


def _start_worker(node: str, queue: str, concurrency: int, env: dict[str, str]) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "offgridperf", "worker", "-Q", queue,
         "-c", str(concurrency), "--prefetch-multiplier", "1", "-l", "WARNING",
         "-n", f"{node}%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: Any, django_db_blocker: Any) -> Iterator[SessionWorkers]:
    """Real Celery workers (Redis broker) against the test database: a load generator and a
    default worker (SessionWorkers)."""
    from django.db import connection

    from offgridperf.celery import app

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    app.control.purge()
    env = worker_env(database_name)
    default_node = f"test-default-{os.getpid()}@"
    workers = SessionWorkers(
        loadgen=_start_worker(loadgen_node(), "loadgen", 1, env),
        default=_start_worker(default_node, "default", 2, env),
    )
    wanted = {loadgen_node(), default_node}
    deadline = time.monotonic() + 60
    while wanted and time.monotonic() < deadline:
        for proc in (workers.loadgen, workers.default):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: {proc.stderr.read().decode()[-2000:]}")
        answered = {name for reply in app.control.ping(timeout=1.0) for name in reply}
        wanted = {node for node in wanted if not any(a.startswith(node) for a in answered)}
    if wanted:
        for proc in (workers.loadgen, workers.default):
            proc.kill()
        raise RuntimeError(f"the Celery workers {wanted} did not answer a ping within 60 s")
    yield workers
    for proc in (workers.loadgen, workers.default):
        _stop_worker(proc)


@pytest.fixture(scope="session")
def https_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsTarget]:
    """The test target over https, with a certificate (127.0.0.1, localhost) from a throwaway
    trustme CA that nothing trusts; trust it by pointing SSL_CERT_FILE at `.ca_file`."""
    with https_target_server(tmp_path_factory.mktemp("tls")) as served:
        yield served
