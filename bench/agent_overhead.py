"""The target agent's overhead: the CPU time a third-party Django project spends per request with
the agent off, on with untagged requests, and on with every request tagged.

A saturated CPU-bound server's throughput is 1 / its CPU time per request, so the ratio of CPU
per request is the throughput cost. Throughput itself, measured in windows one after another,
drifts by several percent on a shared 2-core machine (the A/A difference of two plain
processes was 3-9%), more than the 3% goal. Here the variants are interleaved request by
request inside the same processes, so that whatever else the machine does falls on all of
them alike, and each request's CPU time is counted where it is spent.

The project (tests/agent/thirdparty, its N+1 view: 21 SQLite queries a request, the agent's
costliest case) is served by TARGETS gunicorn processes of one sync worker each, through
bench/agent_target.py: two Django handlers per process (with and without the agent's
middleware), a header choosing per request, and each request's CPU time counted by the serving
thread. USERS client threads keep the workers saturated, each cycling through the variants:
off, off again (the A/A control: the same handler), agent untagged, agent tagged (a signed run
tag). After a warm-up the counters are read every BLOCK_S seconds, BLOCKS times. Per variant:

    cost = (CPU/request of the variant - of "off") / whole CPU of an "off" request

where the denominator is the processes' CPU per request (gunicorn's own parsing and writing
included) less what the agent added; the tagged cost also counts the agent's publishing
thread. It is computed over the whole run, by the mean and by a trimmed mean (TRIM of each
variant's requests cut at either end), with a 95% interval from the spread of the per-block
costs. The A/A row must hold 0 in its interval, or the measurement is taken as biased.

Goals (issue 23): every request tagged at most 3%; untagged not measurable (its interval holds
0, or at most 1%). PASS when the interval lies within the goal, FAIL when it lies beyond it,
INCONCLUSIVE when it straddles it. The exit status follows the trimmed mean.

    python -m bench agent_overhead
    BENCH_AGENT_BLOCKS=40 BENCH_AGENT_TARGETS=3 python -m bench agent_overhead

Environment: BENCH_AGENT_BLOCKS (25), BENCH_AGENT_BLOCK_S (3), BENCH_AGENT_TARGETS (2),
BENCH_AGENT_USERS (3 per target), BENCH_AGENT_PATH (/books), REDIS_URL (where the agent
publishes; required).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.agent_target import REPORT_PATH, VARIANTS
from bench.profiling_overhead import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "agent" / "thirdparty"
BLOCKS = int(os.environ.get("BENCH_AGENT_BLOCKS", "25"))
BLOCK_S = float(os.environ.get("BENCH_AGENT_BLOCK_S", "3"))
TARGETS = int(os.environ.get("BENCH_AGENT_TARGETS", "2"))
USERS = int(os.environ.get("BENCH_AGENT_USERS", str(3 * TARGETS)))
PATH = os.environ.get("BENCH_AGENT_PATH", "/books")
WARM_UP_S = 3.0
KEY = "bench-agent-key-of-at-least-32-characters"
RUN_ID = 4_000_000_000
TAGGED_GOAL_PCT = 3.0
UNTAGGED_GOAL_PCT = 1.0
# The share of each variant's requests cut at either end for the trimmed mean.
TRIM = 0.1
# A 95% interval: this many standard errors of the blocks' costs either side.
CONFIDENCE_Z = 1.96


@dataclass(frozen=True)
class Reading:
    """The target's counters at one moment."""

    # variant -> (requests, CPU ns)
    variants: dict[str, tuple[int, int]]
    process_cpu_ns: int
    publisher_cpu_ns: int
    # variant -> each request's CPU ns since the reading before
    samples: dict[str, list[int]]


@dataclass(frozen=True)
class Block:
    """What one block of BLOCK_S seconds measured."""

    # variant -> the serving thread's CPU µs per request
    request_us: dict[str, float]
    requests: dict[str, int]
    # cost against "off", % of an "off" request's whole CPU time: of the mean, and of the
    # trimmed mean (TRIM of the requests cut at either end)
    cost_pct: dict[str, float]
    trimmed_cost_pct: dict[str, float]
    off_total_us: float
    # the agent's publishing thread, per tagged request, % of an "off" request
    publisher_pct: float


def start_target(work: Path, port: int) -> subprocess.Popen[bytes]:
    pythonpath = [str(PROJECT), str(ROOT / "agent"), str(ROOT), os.environ.get("PYTHONPATH")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, pythonpath)),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DATABASE": str(work / "shop.sqlite3"),
        "SHOP_AGENT_REDIS_URL": os.environ["REDIS_URL"],
        "SHOP_AGENT_KEY": KEY,
        "SHOP_AGENT": "1",
        "PYTHONHASHSEED": "0",
    }
    if not (work / "shop.sqlite3").exists():
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], env=env,
                       cwd=work, check=True)  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "bench.agent_target:application"],
        cwd=work, env=env,
    )  # fmt: skip


def read(port: int, timeout_s: float = 10.0) -> Reading:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{REPORT_PATH}", timeout=timeout_s) as r:
        data = json.loads(r.read())
    return Reading(
        {name: (int(n), int(ns)) for name, (n, ns) in data["variants"].items()},
        int(data["process_cpu_ns"]),
        int(data["publisher_cpu_ns"]),
        {name: [int(ns) for ns in values] for name, values in data["samples"].items()},
    )


def read_all(ports: list[int]) -> Reading:
    """Every target's counters, summed."""
    readings = [read(port) for port in ports]
    return Reading(
        {v: (sum(r.variants[v][0] for r in readings), sum(r.variants[v][1] for r in readings))
         for v in VARIANTS},
        sum(r.process_cpu_ns for r in readings),
        sum(r.publisher_cpu_ns for r in readings),
        {v: [ns for r in readings for ns in r.samples[v]] for v in VARIANTS},
    )  # fmt: skip


def wait_until_up(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the shop target exited {proc.returncode}")
        try:
            read(port, timeout_s=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the shop target did not answer within 30 s")


class Load:
    """USERS threads, each sending the variants in turn (from its own starting point), so that
    all of them are always in the worker's queue together."""

    def __init__(self, ports: list[int], tag: str) -> None:
        self.ports = ports
        self.headers = {name: {"X-Bench-Variant": name} for name in VARIANTS}
        self.headers["tagged"]["X-Offgridperf-Tag"] = tag
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._user, args=(i,), daemon=True) for i in range(USERS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _user(self, index: int) -> None:
        turn, port = index, self.ports[index % len(self.ports)]
        while not self._stop.is_set():
            variant = VARIANTS[turn % len(VARIANTS)]
            turn += 1
            # A sync worker closes every connection: a new one per request, as any client.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", PATH, headers=self.headers[variant])
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.errors.append(f"{variant}: HTTP {response.status}")
            except OSError as exc:
                self.errors.append(f"{variant}: {exc}")
            finally:
                conn.close()


def trimmed_mean_us(samples_ns: list[int]) -> float:
    """The mean of the requests left when TRIM of them are cut at either end: a request the
    machine's other work slowed down (caches taken, frequency lowered) counts less."""
    ordered = sorted(samples_ns)
    cut = int(len(ordered) * TRIM)
    kept = ordered[cut : len(ordered) - cut] or ordered
    return statistics.fmean(kept) / 1000


def block_of(before: Reading, after: Reading, samples: dict[str, list[int]]) -> Block:
    requests = {v: after.variants[v][0] - before.variants[v][0] for v in VARIANTS}
    if min(requests.values()) == 0:
        raise RuntimeError(f"a variant got no request in a block: {requests}")
    request_us = {
        v: (after.variants[v][1] - before.variants[v][1]) / 1000 / requests[v] for v in VARIANTS
    }
    total = sum(requests.values())
    process_us = (after.process_cpu_ns - before.process_cpu_ns) / 1000
    publisher_us = (after.publisher_cpu_ns - before.publisher_cpu_ns) / 1000
    added = {v: request_us[v] - request_us["off"] for v in VARIANTS}
    added["tagged"] += publisher_us / requests["tagged"]
    # The process' CPU per request, less what the agent added on average: an "off" request.
    off_total_us = process_us / total - sum(added[v] * requests[v] for v in VARIANTS) / total
    cost = {v: 100.0 * added[v] / off_total_us for v in VARIANTS if v != "off"}
    trimmed = {v: trimmed_mean_us(samples[v]) for v in VARIANTS}
    trimmed_added = {v: trimmed[v] - trimmed["off"] for v in VARIANTS}
    trimmed_added["tagged"] += publisher_us / requests["tagged"]
    trimmed_cost = {v: 100.0 * trimmed_added[v] / off_total_us for v in VARIANTS if v != "off"}
    publisher_pct = 100.0 * publisher_us / requests["tagged"] / off_total_us
    return Block(request_us, requests, cost, trimmed_cost, off_total_us, publisher_pct)


def main() -> int:
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL is not set: the agent has nowhere to publish; skipped")
        return 0
    from offgridperf_agent import publish, tags

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as folder:
        ports = [free_port() for _ in range(TARGETS)]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                procs.append(start_target(Path(folder), port))
                wait_until_up(procs[-1], port)
            with Load(ports, tags.sign(KEY, RUN_ID, "books")) as load:
                time.sleep(WARM_UP_S)
                readings = [read_all(ports)]
                for _ in range(BLOCKS):
                    time.sleep(BLOCK_S)
                    readings.append(read_all(ports))
            if load.errors:
                raise RuntimeError(f"{len(load.errors)} failed requests, e.g. {load.errors[:3]}")
        finally:
            for proc in procs:
                stop(proc)
            _forget_published(publish.run_key(RUN_ID))
    return report(readings)


def _forget_published(key: str) -> None:
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key)


@dataclass(frozen=True)
class Estimate:
    """A variant's cost over the whole run, and how far it could be off."""

    cost_pct: float
    # 95% half-width: CONFIDENCE_Z standard errors of the blocks' costs.
    margin_pct: float

    @property
    def low(self) -> float:
        return self.cost_pct - self.margin_pct

    @property
    def high(self) -> float:
        return self.cost_pct + self.margin_pct

    def __str__(self) -> str:
        return f"{self.cost_pct:+.2f}% ± {self.margin_pct:.2f}"


def estimate(whole: Block, blocks: list[Block], variant: str, *, trimmed: bool) -> Estimate:
    def of(block: Block) -> float:
        return (block.trimmed_cost_pct if trimmed else block.cost_pct)[variant]

    costs = [of(b) for b in blocks]
    margin = CONFIDENCE_Z * statistics.stdev(costs) / len(costs) ** 0.5
    return Estimate(of(whole), margin)


def judge(cost: Estimate, goal: float, aa: Estimate) -> str:
    """PASS when the cost's whole interval is within the goal, FAIL when all of it is beyond;
    INCONCLUSIVE otherwise, and whenever the A/A interval misses 0 (then the method itself is
    off on this machine)."""
    if aa.low > 0 or aa.high < 0:
        return "INCONCLUSIVE (the A/A control differs from 0: the measurement is biased here)"
    if cost.high <= goal:
        return "PASS"
    if cost.low > goal:
        return "FAIL"
    return "INCONCLUSIVE (the interval straddles the goal: more blocks, or a quieter machine)"


def report(readings: list[Reading]) -> int:
    blocks = [block_of(a, b, b.samples) for a, b in zip(readings, readings[1:], strict=False)]
    every = {v: [ns for r in readings[1:] for ns in r.samples[v]] for v in VARIANTS}
    whole = block_of(readings[0], readings[-1], every)
    requests = sum(whole.requests.values())
    print(f"{len(blocks)} blocks of {BLOCK_S:g} s, {requests} requests of GET {PATH}; an 'off' "
          f"request costs the process {whole.off_total_us:.0f} µs of CPU")  # fmt: skip
    print(f"{'variant':<12}{'requests':>9}{'µs/req':>8}{'cost (mean)':>20}{'cost (trimmed)':>20}")
    means = {v: estimate(whole, blocks, v, trimmed=False) for v in VARIANTS if v != "off"}
    trims = {v: estimate(whole, blocks, v, trimmed=True) for v in VARIANTS if v != "off"}
    for v in VARIANTS:
        line = f"{v:<12}{whole.requests[v]:>9}{whole.request_us[v]:>8.0f}"
        print(line + (f"{means[v]!s:>20}{trims[v]!s:>20}" if v != "off" else ""))
    # The thread's cost is per second, not per request: at a low saturated rate (a slow or
    # crowded machine) it weighs on each request far more than at hundreds of requests a second.
    rate = whole.requests["tagged"] / (len(blocks) * BLOCK_S * TARGETS)
    print(f"of the tagged cost, the agent's publishing thread (once a second, whatever the "
          f"rate): {whole.publisher_pct:.2f}%, at {rate:.1f} tagged requests a second per "
          f"process; "
          f"the tagged requests themselves: "
          f"{trims['tagged'].cost_pct - whole.publisher_pct:+.2f}% (trimmed), "
          f"{means['tagged'].cost_pct - whole.publisher_pct:+.2f}% (mean)")  # fmt: skip
    status = 0
    for kind, estimates in (("trimmed mean", trims), ("mean", means)):
        aa, tagged, untagged = (estimates[v] for v in ("off again", "tagged", "untagged"))
        print(f"-- by the {kind}: A/A noise floor (off again against off) {aa}")
        verdict = judge(tagged, TAGGED_GOAL_PCT, aa)
        print(f"every request tagged: {tagged} of CPU per request, throughput "
              f"x{1 / (1 + tagged.cost_pct / 100):.3f} (goal <= {TAGGED_GOAL_PCT:g}%): "
              f"{verdict}")  # fmt: skip
        untagged_verdict = judge(untagged, UNTAGGED_GOAL_PCT, aa)
        if untagged.low <= 0 <= untagged.high and not untagged_verdict.startswith(
            "INCONCLUSIVE (the A/A"
        ):
            # The goal is "not measurable": an interval around 0 meets it at this resolution.
            untagged_verdict = (
                f"PASS (not measurable: its interval holds 0, to ±{untagged.margin_pct:.2f}%)"
            )
        print(f"untagged requests: {untagged} of CPU per request (goal: not measurable, "
              f"<= {UNTAGGED_GOAL_PCT:g}%): {untagged_verdict}")  # fmt: skip
        if kind == "trimmed mean":  # the verdict's measure
            verdicts = (verdict, untagged_verdict)
            status = 1 if any(v == "FAIL" for v in verdicts) else 0
    print(
        "(cost: the variant's CPU per request less an 'off' request's, against an 'off' "
        "request's whole CPU time, over the whole run; variants interleaved request by request "
        f"in one process; trimmed: {TRIM:.0%} of each variant's requests cut at either end; ± is "
        f"{CONFIDENCE_Z} standard errors of the per-block costs. The exit status follows the "
        "trimmed mean.)"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
