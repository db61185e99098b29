"""The target agent's overhead: a third-party Django project's saturated throughput with the
agent off, on with untagged requests, and on with every request tagged.

The project (tests/agent/thirdparty: its N+1 view, 21 SQLite queries a request, the agent's
costliest case) is served by gunicorn, one sync worker each, pinned to CPU 0: `plain` without
the agent installed, `agent` with it first in MIDDLEWARE. The engine (closed model, USERS users)
runs on CPU 1. Windows alternate in one run, ROUNDS times: plain, agent untagged, plain,
agent tagged, plain. Each agent window is compared with the mean of the plain windows around
it and the overhead is 1 - the median ratio, so drift on the shared machine cancels.

Goals (issue 23): tagged at most 3%; untagged not measurable (judged against 1%).

    python -m bench agent_overhead
    BENCH_AGENT_SECONDS=3 BENCH_AGENT_ROUNDS=6 python -m bench agent_overhead

Environment: BENCH_AGENT_SECONDS (3), BENCH_AGENT_ROUNDS (4), BENCH_AGENT_USERS (8), REDIS_URL
(where the agent publishes; required).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.profiling_overhead import TARGET_CPU, TOOL_CPU, free_port, pinned, stop

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "agent" / "thirdparty"
SECONDS = int(os.environ.get("BENCH_AGENT_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_AGENT_ROUNDS", "4"))
USERS = int(os.environ.get("BENCH_AGENT_USERS", "8"))
KEY = "bench-agent-key-of-at-least-32-characters"
TAGGED_GOAL_PCT = 3.0
UNTAGGED_GOAL_PCT = 1.0
PATH = "/books"


def start(work: Path, agent: bool) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DATABASE": str(work / "shop.sqlite3"),
        "SHOP_AGENT_REDIS_URL": os.environ["REDIS_URL"],
        "SHOP_AGENT_KEY": KEY,
        "SHOP_AGENT": "1" if agent else "0",
        "PYTHONHASHSEED": "0",
    }
    if not (work / "shop.sqlite3").exists():
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], env=env,
                       cwd=work, check=True)  # fmt: skip
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "shop.wsgi:application",
    ]
    proc = subprocess.Popen(pinned(TARGET_CPU, command), cwd=work, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + PATH, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("the shop target did not answer within 30 s")


def window(work: Path, url: str, tag: str | None) -> float:
    """Requests per second of one window of load."""
    headers = {"X-Offgridperf-Tag": tag} if tag else {}
    document = {
        "version": 1, "name": "agent overhead", "mode": "requests", "target_base_url": url,
        "load_model": "closed", "users": USERS, "duration_s": SECONDS,
        "abort_error_rate_pct": None,
        "steps": [{"name": "books", "method": "GET", "path": PATH, "headers": headers}],
    }  # fmt: skip
    path = work / "document.json"
    path.write_text(json.dumps(document))
    command = [sys.executable, "-m", "loadtests.engine", "--document", str(path), "--json"]
    done = subprocess.run(pinned(TOOL_CPU, command), capture_output=True, text=True, cwd=ROOT,
                          timeout=SECONDS + 60, check=False)  # fmt: skip
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the engine exited {done.returncode}: {done.stderr[-800:]}")
    summary = json.loads(done.stdout)
    if summary["errors"]:
        raise RuntimeError(f"the engine saw errors: {summary['errors_by_class']}")
    return float(summary["throughput_rps"])


def main() -> int:
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL is not set: the agent has nowhere to publish; skipped")
        return 0
    from offgridperf_agent import tags

    tag = tags.sign(KEY, 4_000_000_000, "books")
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as folder:
        work = Path(folder)
        plain, plain_url = start(work, agent=False)
        agent, agent_url = start(work, agent=True)
        try:
            for url in (plain_url, agent_url):
                window(work, url, None)  # warm up both workers
            ratios: dict[str, list[float]] = {"untagged": [], "tagged": []}
            rps: dict[str, list[float]] = {"plain": [], "untagged": [], "tagged": []}
            before = window(work, plain_url, None)
            rps["plain"].append(before)
            for _ in range(ROUNDS):
                for label, header in (("untagged", None), ("tagged", tag)):
                    measured = window(work, agent_url, header)
                    after = window(work, plain_url, None)
                    rps[label].append(measured)
                    rps["plain"].append(after)
                    ratios[label].append(measured / ((before + after) / 2))
                    before = after
        finally:
            stop(plain)
            stop(agent)
    return report(rps, ratios)


def report(rps: dict[str, list[float]], ratios: dict[str, list[float]]) -> int:
    print(f"{'variant':<22}{'median req/s':>14}{'overhead':>10}  goal")
    print(f"{'plain (no agent)':<22}{statistics.median(rps['plain']):>14.1f}")
    status = 0
    for label, goal in (("untagged", UNTAGGED_GOAL_PCT), ("tagged", TAGGED_GOAL_PCT)):
        overhead = (1 - statistics.median(ratios[label])) * 100
        passed = overhead <= goal
        status = status if passed else 1
        print(f"{'agent, ' + label:<22}{statistics.median(rps[label]):>14.1f}{overhead:>9.1f}%"
              f"  <= {goal:g}%: {'PASS' if passed else 'FAIL'}")  # fmt: skip
    print("(overhead: 1 - median of each window's rate over the plain windows around it)")
    return status


if __name__ == "__main__":
    sys.exit(main())
