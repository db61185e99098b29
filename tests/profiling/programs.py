"""Small Python programs to profile, run as real child processes by the tests:

python -m tests.profiling.programs spin | leak | churn | warm-up | steady | threads | parent
"""

from __future__ import annotations

import sys
import threading
import time

LEAK_BYTES_PER_S = 1_000_000
NAMED_THREAD = "ledger-flusher"


def burn_cpu_here() -> int:
    total = 0
    for i in range(200_000):
        total += i * i
    return total


def spin() -> None:
    while True:
        burn_cpu_here()
        time.sleep(0.001)


def leak() -> None:
    kept = []
    while True:
        kept.append(bytearray(LEAK_BYTES_PER_S // 10))  # the leaking line
        time.sleep(0.1)


CHURN_BYTES = 1_000_000


def churn() -> None:
    """Allocates and frees 100 MB a second at one line and keeps 1 MB a second at another: by
    bytes allocated the first is the top allocator, by bytes held at any moment the second."""
    kept = []
    while True:
        for _ in range(10):
            scratch = bytearray(CHURN_BYTES)  # the churning line
            del scratch
        kept.append(bytearray(LEAK_BYTES_PER_S // 10))  # the line that keeps
        time.sleep(0.1)


WARM_UP_MB = 30


def warm_up() -> None:
    """Grow by WARM_UP_MB in well under a second (caches and pools filling), then stay flat:
    a test's simulated hour takes its readings a few milliseconds apart, and a warm-up that
    lasted seconds would fill most of that hour, as a leak does."""
    kept = []
    for _ in range(WARM_UP_MB):
        kept.append(b"w" * 1_000_000)  # written, so resident at once
        time.sleep(0.01)
    while True:
        time.sleep(0.1)


def steady() -> None:
    while True:
        scratch = [bytearray(100_000) for _ in range(5)]
        del scratch
        time.sleep(0.05)


def threads() -> None:
    def wait_forever() -> None:
        threading.Event().wait()

    threading.Thread(target=wait_forever, name=NAMED_THREAD, daemon=True).start()
    while True:
        time.sleep(0.1)


def leak_with_agent() -> None:
    from offgridperf_agent import process as agent

    agent.start(sys.argv[2], role="test-leaker")
    leak()


def collect_on_demand() -> None:
    """Run the agent and force a full collection for every line read from stdin."""
    import gc

    from offgridperf_agent import process as agent

    agent.start(sys.argv[2], role="test-collector")
    for _ in sys.stdin:
        gc.collect()
        print("collected", flush=True)


def parent() -> None:
    """Start one child Python process, print its PID, and idle."""
    import subprocess  # here, not above: tests name the leaking line by its number

    child = subprocess.Popen(
        [sys.executable, "-m", "tests.profiling.programs", "child"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    child.stdout.readline()  # its "ready"
    print(child.pid, flush=True)
    while True:
        time.sleep(0.1)


def child() -> None:
    """Idle until the parent is gone (a killed parent leaves no child behind for long)."""
    import os

    parent_pid = os.getppid()
    while os.getppid() == parent_pid:
        time.sleep(0.1)


if __name__ == "__main__":
    print("ready", flush=True)
    modes = {
        "spin": spin,
        "leak": leak,
        "churn": churn,
        "steady": steady,
        "warm-up": warm_up,
        "threads": threads,
        "leak-agent": leak_with_agent,
        "collect": collect_on_demand,
        "parent": parent,
        "child": child,
    }
    modes[sys.argv[1]]()
