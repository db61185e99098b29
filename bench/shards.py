"""Sharded runs benchmark: aggregate throughput of 1 against 2 generator shards.

A sharded run's shards are Celery tasks, each running the engine on 1/N of the load with its
own event loop and process; the per-second rows they write are a few small INSERTs. So this
measures what sharding buys at the engine level: nginx (one worker, pinned to CPU 0, as in
bench/loadgen.py) driven flat out (closed model, no think time) by one engine process with U
users, then by two engine processes started together with the users split as
loadtests.shards.split_count splits them (remainder to the first shard). Rounds are
interleaved; each side's best round counts. Aggregate = total requests / longest duration.

On this 2-core machine with the target on it too, two shards compete with the target (and
each other) for the same cores, so the ratio is bounded by CPU, not by the product: it is
reported, with each side's CPU per request, as information (no PASS/FAIL: sharding pays on
more cores or more machines, which this machine does not have).
Environment: BENCH_SHARDS_SECONDS (default 8), BENCH_SHARDS_ROUNDS (2), BENCH_SHARDS_USERS (64).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time

from bench.loadgen import ROOT, engine_command, nginx

SECONDS = int(os.environ.get("BENCH_SHARDS_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_SHARDS_ROUNDS", "2"))
USERS = int(os.environ.get("BENCH_SHARDS_USERS", "64"))


def split_count(total: int, index: int, count: int) -> int:
    # As loadtests.shards.split_count, without importing Django into the bench.
    base, remainder = divmod(total, count)
    return base + (1 if index < remainder else 0)


def sharded_round(url: str, shards: int) -> tuple[float, int, float]:
    """(aggregate req/s, requests, generator CPU s) of `shards` engines started together."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            engine_command(
                f"{url}/index.txt",
                "--users",
                str(split_count(USERS, index, shards)),
                "--duration",
                str(SECONDS),
                "--connections",
                str(split_count(USERS, index, shards)),
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for index in range(shards)
    ]
    results = [json.loads(proc.communicate(timeout=SECONDS + 120)[0]) for proc in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    requests = sum(int(r["requests"]) for r in results)
    longest = max(float(r["duration_s"]) for r in results)
    return requests / longest, requests, cpu


def main() -> int:
    best: dict[int, tuple[float, int, float]] = {}
    with nginx() as url:
        for round_no in range(ROUNDS):
            for shards in (1, 2):
                measured = sharded_round(url, shards)
                print(
                    f"round {round_no + 1}: {shards} shard(s): {measured[0]:,.0f} req/s "
                    f"({measured[1]:,} requests, {measured[2]:.1f} generator CPU s)"
                )
                if measured[0] > best.get(shards, (0.0, 0, 0.0))[0]:
                    best[shards] = measured
                time.sleep(1)
    one, two = best[1], best[2]
    ratio = two[0] / one[0] if one[0] else 0.0
    print(f"{'shards':>8} {'req/s':>10} {'CPU µs/request':>16}")
    for shards, (rate, requests, cpu) in sorted(best.items()):
        print(f"{shards:>8} {rate:>10,.0f} {1e6 * cpu / max(requests, 1):>16,.1f}")
    print(
        f"2 shards / 1 shard = {ratio:.2f} on {os.cpu_count()} CPUs with nginx on CPU 0 "
        "(information: one engine already keeps a core busy, so a second one here only "
        "competes with the target and the first for the same 2 cores)"
    )
    return 0
