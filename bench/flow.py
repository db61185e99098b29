"""Flow mode benchmark: did flows slow the requests mode, and how fast is a flow?

Sections (each prints PASS/FAIL against its goal), all against nginx (one worker, CPU 0)
with the generator pinned to CPU 1, closed model, 50 users and connections, no think time:
  requests  the requests mode of this checkout against the engine as it was before flows
            (`git show BASE:loadtests/engine/...` copied into a temporary directory and
            imported from there in its own process; never committed), same static config,
            interleaved rounds: best req/s and requests per CPU-second of each.
            Goal: this checkout >= 0.95 x the old engine (the rounds' noise is a few %).
  flow      a two-step templated flow (GET /item.json, extract $.id with a JSON path; GET
            /index.txt?id={{ id }}&r={{ random_int(1, 1000) }}) against the static requests
            mode, per core: requests per generator CPU-second. Goal: flow >= 0.40 x static.

Environment: BENCH_FLOW_SECONDS (10), BENCH_FLOW_ROUNDS (5), BENCH_FLOW_USERS (50),
BENCH_FLOW_BASE (the commit before flows, 80902dd).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_FLOW_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_FLOW_ROUNDS", "5"))
USERS = int(os.environ.get("BENCH_FLOW_USERS", "50"))
BASE = os.environ.get("BENCH_FLOW_BASE", "80902dd")
REQUESTS_GOAL = 0.95
FLOW_GOAL = 0.40

# Runs in a child process pinned to the generator CPU: the config as a document on argv,
# the engine from whatever `loadtests` the child's sys.path finds first.
CHILD = """
import json, sys, time
from loadtests.engine.config import EngineConfig
from loadtests.engine.runner import run
config = EngineConfig.from_dict(json.loads(sys.argv[1]))
cpu = time.process_time()
result = run(config)
cpu = time.process_time() - cpu
print(json.dumps({"requests": result.requests, "errors": result.errors,
                  "errors_by_class": result.errors_by_class,
                  "rps": result.throughput_rps, "cpu_s": cpu,
                  "iterations": getattr(result, "iterations", 0)}))
"""


def document(base_url: str, steps: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    return {
        "target_base_url": base_url, "load_model": "closed", "users": USERS,
        "max_connections": USERS, "duration_s": SECONDS, "abort_error_rate_pct": None,
        "mode": mode, "steps": steps,
    }  # fmt: skip


def static_steps() -> list[dict[str, Any]]:
    return [{"name": "static", "method": "GET", "path": "/index.txt", "expected_statuses": [200]}]


def flow_steps() -> list[dict[str, Any]]:
    return [
        {
            "name": "item", "method": "GET", "path": "/item.json", "expected_statuses": [200],
            "extract": [{"variable": "id", "from": "json", "expression": "$.id"}],
        },
        {
            "name": "use", "method": "GET", "expected_statuses": [200],
            "path": "/index.txt?id={{ id }}&r={{ random_int(1, 1000) }}",
        },
    ]  # fmt: skip


def engine_round(doc: dict[str, Any], pythonpath: Path) -> dict[str, Any]:
    from bench.loadgen import GENERATOR_CPU, pinned

    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    command = pinned(GENERATOR_CPU, [sys.executable, "-c", CHILD, json.dumps(doc)])
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=SECONDS + 120, cwd=pythonpath,
        env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the engine child failed: {done.stderr[-1500:]}")
    measured = json.loads(done.stdout)
    if measured["errors"]:
        raise RuntimeError(f"the engine saw errors: {measured['errors_by_class']}")
    return measured


def baseline_engine(tmp: Path) -> Path:
    """The engine at BASE, importable as `loadtests.engine` from the returned directory."""
    package = tmp / "baseline" / "loadtests" / "engine"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{BASE}:loadtests/engine/"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.split()  # fmt: skip
    for name in listing:
        if name.endswith(".py"):
            source = subprocess.run(
                ["git", "show", f"{BASE}:loadtests/engine/{name}"],
                capture_output=True, text=True, cwd=ROOT, check=True,
            ).stdout  # fmt: skip
            (package / name).write_text(source)
    return package.parent.parent


def per_cpu(m: dict[str, Any]) -> float:
    return m["requests"] / m["cpu_s"] if m["cpu_s"] > 0 else 0.0


def best(rounds: list[dict[str, Any]], key: str) -> float:
    return max((per_cpu(m) if key == "per_cpu" else m[key]) for m in rounds)


def main(sections: list[str] | None = None) -> int:
    from bench.loadgen import nginx, verdict

    chosen = sections or ["requests", "flow"]
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp, nginx() as url:
        www = _nginx_root(url)
        if www is not None:
            (www / "item.json").write_text(json.dumps({"id": 7, "name": "item"}))
        old_root = baseline_engine(Path(tmp))
        rounds: dict[str, list[dict[str, Any]]] = {"old": [], "new": [], "flow": []}
        plan = []
        if "requests" in chosen:
            plan += [("old", static_steps(), "requests", old_root)]
        plan += [("new", static_steps(), "requests", ROOT)]
        if "flow" in chosen:
            plan += [("flow", flow_steps(), "flow", ROOT)]
        for _ in range(ROUNDS):
            for name, steps, mode, root in plan:
                rounds[name].append(engine_round(document(url, steps, mode), root))
        print(
            f"\n-- nginx 1 worker on CPU 0; generator on CPU 1; closed model, {USERS} users, "
            f"{SECONDS} s, best of {ROUNDS} interleaved rounds"
        )
        print(f"{'engine':<40}{'req/s (best)':>14}{'req per CPU-s':>16}  rounds (req/s)")
        labels = {
            "old": f"requests mode, engine at {BASE}",
            "new": "requests mode, this checkout",
            "flow": "flow, 2 steps, template + JSON extract",
        }
        for name, label in labels.items():
            if rounds[name]:
                listing = " / ".join(f"{m['rps']:,.0f}" for m in rounds[name])
                print(
                    f"{label:<40}{best(rounds[name], 'rps'):>14,.0f}"
                    f"{best(rounds[name], 'per_cpu'):>16,.0f}  {listing}"
                )
        new_rps, new_cpu = best(rounds["new"], "rps"), best(rounds["new"], "per_cpu")
        if rounds["old"]:
            ratio = new_rps / best(rounds["old"], "rps")
            cpu_ratio = new_cpu / best(rounds["old"], "per_cpu")
            results["requests"] = ratio >= REQUESTS_GOAL
            print(
                f"requests mode now / before = {ratio:.3f} req/s, {cpu_ratio:.3f} per CPU-s "
                f"(goal >= {REQUESTS_GOAL})  {verdict(results['requests'])}"
            )
        if rounds["flow"]:
            ratio = best(rounds["flow"], "per_cpu") / new_cpu
            results["flow"] = ratio >= FLOW_GOAL
            flow_rps = best(rounds["flow"], "rps")
            print(
                f"flow / static requests mode = {ratio:.3f} per CPU-s, "
                f"{flow_rps / new_rps:.3f} req/s (goal >= {FLOW_GOAL} per core)  "
                f"{verdict(results['flow'])}"
            )
    print("\n" + "  ".join(f"{name}: {verdict(ok)}" for name, ok in results.items()))
    return 0 if results and all(results.values()) else 1


def _nginx_root(url: str) -> Path | None:
    """nginx()'s document root, found through its temporary directory's config."""
    port = url.rsplit(":", 1)[1]
    for conf in Path(tempfile.gettempdir()).glob("bench-nginx-*/nginx.conf"):
        if f":{port};" in conf.read_text():
            return conf.parent / "www"
    return None


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:] or None))
