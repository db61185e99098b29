"""Run the whole product in the foreground: web, Celery worker, Celery beat and the demo
target (the emissions API on TARGET_PORT). Ctrl-C, or any process exiting, stops all of them
cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

STOP_GRACE_S = 15


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]


def product_processes(host: str, port: int) -> list[ProcessSpec]:
    bindir = os.path.dirname(sys.executable)
    celery = [os.path.join(bindir, "celery"), "-A", "offgridperf"]
    return [
        ProcessSpec(
            "web",
            [
                os.path.join(bindir, "gunicorn"),
                "offgridperf.wsgi:application",
                "--bind",
                f"{host}:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
        ),
        ProcessSpec(
            "worker",
            [*celery, "worker", "-Q", "default,loadgen", "-c", "2", "-l", settings.LOG_LEVEL],
        ),
        ProcessSpec("beat", [*celery, "beat", "-l", settings.LOG_LEVEL, "--pidfile="]),
        ProcessSpec(
            "target",
            [
                os.path.join(bindir, "gunicorn"),
                "offgridperf.wsgi:application",
                # Its own URL conf (emissions.api_urls), no login: the service under test.
                "--env",
                "OFFGRIDPERF_ROLE=target",
                "--bind",
                f"127.0.0.1:{settings.TARGET_PORT}",
                "--workers",
                "2",
                "--threads",
                "8",
            ],
        ),
    ]


def _pump(name: str, stream: IO[bytes], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        with lock:
            sys.stdout.write(f"{name:>7} | {line}\n")
            sys.stdout.flush()


class Command(BaseCommand):
    help = "Start web, worker, beat and the emissions target together in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000") or 8000))

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["port"] <= 65535:
            raise CommandError("PORT must be a number from 1 to 65535")
        specs = product_processes(options["host"], options["port"])
        lock = threading.Lock()
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for spec in specs:
            # Own session: Ctrl-C reaches only us, and we stop children in order.
            proc = subprocess.Popen(
                spec.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            children[spec.name] = proc
            threading.Thread(target=_pump, args=(spec.name, proc.stdout, lock), daemon=True).start()
        failed = ""
        while not stopping.is_set():
            for name, proc in children.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with status {proc.returncode}"
                    stopping.set()
                    break
            time.sleep(0.3)
        self.stdout.write(f"stopping: {failed or 'interrupted'}")
        self._stop_all(children)
        if failed:
            raise CommandError(failed)

    def _stop_all(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, proc in children.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stdout.write(f"{name} did not stop in {STOP_GRACE_S}s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
