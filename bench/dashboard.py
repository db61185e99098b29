"""Dashboard render times with years of history, measured by our own load engine.

Seeds a dedicated PostgreSQL database (`offgridperf_bench`, created and migrated here) with
10,000 finished runs across 20 definitions and one hour-long run of 3,600 one-second
intervals, serves the dashboard with gunicorn on a free loopback port, and drives each page
with `loadtests.engine.run` as one logged-in user (a session cookie), one request at a time,
so the latency is the page's server-side time. Goal: overview and run page under 200 ms median.

    python -m bench dashboard        # as `make bench` runs it
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import bench_env

ROOT = Path(__file__).resolve().parent.parent

BENCH_DB = "offgridperf_bench"
DEFINITIONS = 20
RUNS = 10_000
LONG_RUN_SECONDS = 3600
GOAL_MS = 200.0
PAGE_SECONDS = float(os.environ.get("BENCH_DASHBOARD_SECONDS", "10"))
GUNICORN_WORKERS = 2
USERNAME = "bench"


# -- outer process: database, then the measurement in a child with DATABASE_URL set ------------


def main() -> int:
    env = bench_env(BENCH_DB, "dashboard")
    # A child process, so that Django is set up on the bench database whatever ran before.
    return subprocess.call([sys.executable, "-m", "bench.dashboard"], cwd=ROOT, env=env)


# -- inner process ------------------------------------------------------------------------------


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)


def seeded() -> int | None:
    """The long run's id when the database already holds the full data set."""
    from loadtests.models import LoadTestRun, RunInterval

    long_run = LoadTestRun.objects.filter(name="bench long run").first()
    if long_run is None or LoadTestRun.objects.filter(name__startswith="bench-").count() != RUNS:
        return None
    if RunInterval.objects.filter(run=long_run).count() != LONG_RUN_SECONDS:
        return None
    return long_run.pk


def sample_histograms() -> list[str]:
    """A few realistic encoded histograms (a thousand latencies each) to reuse across rows."""
    import random

    from stats.histogram import histogram_of

    rng = random.Random(7)
    return [
        histogram_of([int(rng.lognormvariate(9.5 + shift / 10, 0.6)) for _ in range(1000)]).encode()
        for shift in range(4)
    ]


def seed() -> int:
    from django.db import connection, transaction
    from django.utils import timezone

    from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, RunInterval, Tag

    print(f"seeding {RUNS} runs and a {LONG_RUN_SECONDS}-interval run into {BENCH_DB} ...")
    histograms = sample_histograms()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE loadtests_runinterval, loadtests_loadtestrun, loadtests_loadtestdefinition "
            "RESTART IDENTITY CASCADE"
        )
    now = timezone.now()
    with transaction.atomic():
        tags = [Tag.objects.get_or_create(name=name)[0] for name in ("nightly", "api", "smoke")]
        definitions = LoadTestDefinition.objects.bulk_create(
            LoadTestDefinition(
                name=f"bench definition {i:02d}",
                target_base_url="http://127.0.0.1:8001",
                users=10,
                duration_s=60,
                threshold_p95_ms=25,
            )
            for i in range(DEFINITIONS)
        )
        for i, definition in enumerate(definitions):
            definition.tags.add(tags[i % len(tags)])
            LoadTestStep.objects.create(definition=definition, name="home", path="/ok")
        LoadTestRun.objects.bulk_create(
            (fake_run(definitions[i % DEFINITIONS], i, histograms) for i in range(RUNS)),
            batch_size=1000,
        )
        # Three years of history, newest last; created_at is auto_now_add, so set it after.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE loadtests_loadtestrun "
                "SET created_at = %s - (%s - id) * interval '2 hours', "
                "started_at = %s - (%s - id) * interval '2 hours', "
                "finished_at = %s - (%s - id) * interval '2 hours' + interval '60 seconds'",
                [now, RUNS + 1, now, RUNS + 1, now, RUNS + 1],
            )
        long_run = LoadTestRun.objects.create(
            **{
                **fake_run_fields(definitions[0], RUNS, histograms),
                "name": "bench long run",
                "planned_duration_s": LONG_RUN_SECONDS,
                "duration_s": float(LONG_RUN_SECONDS),
                "requests": LONG_RUN_SECONDS * 1000,
                "started_at": now - timedelta(seconds=LONG_RUN_SECONDS),
                "finished_at": now,
            }
        )
        RunInterval.objects.bulk_create(
            (fake_interval(long_run, second, histograms) for second in range(LONG_RUN_SECONDS)),
            batch_size=600,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return long_run.pk


def fake_run_fields(definition: Any, i: int, histograms: list[str]) -> dict[str, Any]:
    status = "failed" if i % 10 == 3 else "cancelled" if i % 97 == 5 else "passed"
    p95 = 18.0 + (i % 13)
    return {
        "definition": definition,
        "name": f"bench-{definition.name}",
        "config": {"load_model": "closed", "users": 10, "duration_s": 60},
        "status": status,
        "passed": {"passed": True, "failed": False}.get(status),
        "valid": i % 211 != 0,
        "planned_duration_s": 60,
        "requests": 60_000,
        "errors": 12,
        "duration_s": 60.0,
        "throughput_rps": 1000.0,
        "error_rate_pct": 0.02,
        "latency_p50_ms": p95 / 2,
        "latency_p75_ms": p95 * 0.7,
        "latency_p90_ms": p95 * 0.9,
        "latency_p95_ms": p95,
        "latency_p99_ms": p95 * 1.6,
        "latency_p999_ms": p95 * 2.5,
        "latency_max_ms": p95 * 4,
        "latency_mean_ms": p95 / 1.8,
        "service_p50_ms": p95 / 2.1,
        "service_p95_ms": p95 * 0.9,
        "service_p99_ms": p95 * 1.4,
        "latency_histogram": histograms[i % len(histograms)],
        "service_histogram": histograms[(i + 1) % len(histograms)],
        "errors_by_class": {"http_503": {"count": 12, "sample": "503 Service Unavailable"}},
        "steps_summary": {"home": {"requests": 60_000, "errors": 12}},
        "health": {"valid": True, "cpu_pct_max": 41.0, "loop_lag_ms_max": 3.2},
        "threshold_results": [
            {
                "name": "p95_ms",
                "label": "p95 latency (ms)",
                "limit": 25,
                "actual": p95,
                "passed": p95 <= 25,
            },
        ],  # fmt: skip
    }


def fake_run(definition: Any, i: int, histograms: list[str]) -> Any:
    from loadtests.models import LoadTestRun

    return LoadTestRun(**fake_run_fields(definition, i, histograms))


def fake_interval(run: Any, second: int, histograms: list[str]) -> Any:
    from loadtests.models import RunInterval

    spike = second % 600 == 300
    return RunInterval(
        run=run,
        index=second,
        started_at=run.started_at + timedelta(seconds=second),
        requests=1000,
        errors=1 if second % 50 == 0 else 0,
        throughput_rps=1000.0,
        target=10,
        active_users=10,
        in_flight=10,
        latency_p50_ms=9.0,
        latency_p95_ms=300.0 if spike else 20.0 + second % 5,
        latency_p99_ms=900.0 if spike else 30.0,
        latency_max_ms=1200.0 if spike else 45.0,
        service_p50_ms=8.5,
        service_p95_ms=19.0,
        service_p99_ms=28.0,
        latency_histogram=histograms[second % len(histograms)],
        service_histogram=histograms[(second + 1) % len(histograms)],
        errors_by_class={"http_503": 1} if second % 50 == 0 else {},
    )


def session_cookie() -> str:
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    users = get_user_model().objects
    user = users.filter(username=USERNAME).first()
    if user is None:
        user = users.create_superuser(USERNAME, "bench@example.com", None)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "offgridperf.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", str(GUNICORN_WORKERS),
            "--log-level", "warning",
        ],
        cwd=ROOT,
        env=dict(os.environ),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except urllib.error.HTTPError:
            return proc  # it answers (503: a service is down; pages may still render)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not answer within 30 s")


def check_page(base: str, path: str, cookie: str) -> str | None:
    """None when the page answers 200 to the logged-in user, else what went wrong."""
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            if response.url.rstrip("/") != (base + path).rstrip("/"):
                return f"redirected to {response.url}"
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"


def measure(base: str, path: str, cookie: str) -> dict[str, Any]:
    from loadtests.engine import EngineConfig, Step, run

    config = EngineConfig(
        target_base_url=base,
        steps=(Step("page", "GET", path, headers={"Cookie": cookie}),),
        load_model="closed",
        users=1,
        duration_s=PAGE_SECONDS,
        timeout_s=10,
        max_connections=1,
        abort_error_rate_pct=None,
    )
    result = run(config)
    latency = result.latency
    return {
        "requests": result.requests,
        "errors": result.errors,
        "median_ms": latency.value_at_percentile(50) / 1000 if latency.total_count else None,
        "p95_ms": latency.value_at_percentile(95) / 1000 if latency.total_count else None,
        "max_ms": latency.max / 1000 if latency.total_count else None,
    }


def pages(long_run_id: int) -> list[tuple[str, str, bool]]:
    """(name, path, has a goal)."""
    from loadtests.models import LoadTestDefinition

    definition = LoadTestDefinition.objects.order_by("pk").first()
    return [
        ("overview", "/", True),
        ("run page (3,600 s)", f"/runs/{long_run_id}/", True),
        ("overview, filtered p.5", "/?status=passed&tag=api&page=5", False),
        ("definition page", f"/definitions/{definition.pk}/", False),
        ("compare", f"/runs/compare/?b={long_run_id}", False),
        ("live JSON (1 s)", f"/runs/{long_run_id}/live/?after={LONG_RUN_SECONDS - 2}", False),
    ]


def run_bench() -> int:
    setup_django()
    long_run_id = seeded()
    if long_run_id is None:
        started = time.monotonic()
        long_run_id = seed()
        print(f"seeded in {time.monotonic() - started:.0f}s")
    else:
        print(f"reusing the seeded data in {BENCH_DB}")
    cookie = session_cookie()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_gunicorn(port)
    status = 0
    try:
        print(
            f"gunicorn ({GUNICORN_WORKERS} workers) at {base}; "
            f"one user, {PAGE_SECONDS:g} s a page\n"
        )
        print(f"{'page':<26}{'requests':>9}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}  verdict")
        for name, path, has_goal in pages(long_run_id):
            problem = check_page(base, path, cookie)
            if problem:
                print(f"{name:<26} {problem}  FAIL")
                status = 1
                continue
            figures = measure(base, path, cookie)
            verdict = "(no goal)"
            if has_goal:
                ok = not figures["errors"] and (figures["median_ms"] or 1e9) < GOAL_MS
                verdict = f"{'PASS' if ok else 'FAIL'} (< {GOAL_MS:g} ms median)"
                status = status or (0 if ok else 1)
            if figures["errors"]:
                verdict += f", {figures['errors']} errors"
            print(
                f"{name:<26}{figures['requests']:>9}{figures['median_ms']:>11.1f}"
                f"{figures['p95_ms']:>9.1f}{figures['max_ms']:>9.1f}  {verdict}"
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return status


if __name__ == "__main__":
    sys.exit(run_bench())
