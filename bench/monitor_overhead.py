"""The monitor's own cost: the CPU time `manage.py monitor` takes to read 10 registered targets
every PROFILING_MONITOR_INTERVAL_S, as a share of one core.

Ten idle Python processes (tests/profiling/programs.py `threads`) are registered as profile
targets in the bench's own database (offgridperf_bench_monitor); the monitor runs as it does
under runall, at the default interval (5 s) unless BENCH_MONITOR_INTERVAL_S says otherwise.
Its CPU time (user + system, from /proc) is read once it has read every target (Django's
start-up and the first minute's upkeep are not the steady cost; the next minutes' upkeep is
measured) and again after BENCH_MONITOR_SECONDS.

Goal (issue 25): at most 0.5% of one core for 10 targets.

    python -m bench monitor_overhead
    BENCH_MONITOR_SECONDS=120 python -m bench monitor_overhead
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench import bench_env

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "offgridperf_bench_monitor"
TARGETS = 10
GOAL_PCT = 0.5
SECONDS = float(os.environ.get("BENCH_MONITOR_SECONDS", "60"))
INTERVAL_S = float(os.environ.get("BENCH_MONITOR_INTERVAL_S", "5"))
WARM_UP_S = 3.0


def main() -> int:
    env = bench_env(BENCH_DB, "monitor_overhead")
    # A child process, so that Django is set up on the bench database whatever ran before;
    # its table is printed from here, so that var/bench-results/ keeps it.
    child = subprocess.run(
        [sys.executable, "-m", "bench.monitor_overhead"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(child.stdout, end="")
    print(child.stderr, end="", file=sys.stderr)
    return child.returncode


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def measure(env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, readings) of the monitor over the measured window."""
    from profiling.models import MonitorSample

    monitor = subprocess.Popen(
        [sys.executable, "manage.py", "monitor", "--interval", str(INTERVAL_S)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        proc = psutil.Process(monitor.pid)
        # Django's start-up takes seconds of CPU (longer on a loaded machine): measure from
        # the first reading of every target on, once its minute's upkeep is done too.
        deadline = time.monotonic() + 120
        while MonitorSample.objects.filter(resolution="raw").count() < TARGETS:
            if time.monotonic() > deadline or monitor.poll() is not None:
                raise SystemExit("the monitor took no reading within 120 s")
            time.sleep(0.5)
        time.sleep(WARM_UP_S)
        before_cpu, before_wall = cpu_s(proc), time.monotonic()
        before_rows = MonitorSample.objects.filter(resolution="raw").count()
        time.sleep(SECONDS)
        used, wall = cpu_s(proc) - before_cpu, time.monotonic() - before_wall
        readings = MonitorSample.objects.filter(resolution="raw").count() - before_rows
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(timeout=30)
    return used, wall, readings


def run() -> int:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from profiling.models import MonitorSample, ProfileTarget

    targets = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.profiling.programs", "threads"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(TARGETS)
    ]
    try:
        MonitorSample.objects.all().delete()
        ProfileTarget.objects.all().delete()
        for number, target in enumerate(targets, 1):
            ProfileTarget.objects.create(name=f"bench target {number}", pid=target.pid)
        used, wall, readings = measure(dict(os.environ))
    finally:
        for target in targets:
            target.kill()
            target.wait()
        ProfileTarget.objects.all().delete()
    share = used / wall * 100
    per_reading_ms = used / readings * 1000 if readings else float("nan")
    print(f"{TARGETS} targets every {INTERVAL_S:g} s, measured over {wall:.0f} s after a warm-up")
    print(f"{'monitor CPU':<28}{used:8.3f} s")
    print(f"{'readings (target x tick)':<28}{readings:8d}")
    print(f"{'CPU per target reading':<28}{per_reading_ms:8.2f} ms")
    print(f"{'share of one core':<28}{share:8.3f} %   goal <= {GOAL_PCT:g} %")
    verdict = "PASS" if share <= GOAL_PCT else "FAIL"
    print(f"{verdict}: the monitor takes {share:.3f}% of one core for {TARGETS} targets")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(run())
