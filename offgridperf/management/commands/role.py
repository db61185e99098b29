"""Run one role of the product in the foreground, as a container does: web, worker, loadgen,
beat, target or monitor (the same command lines `runall` supervises, from the same functions), or
migrate (prepare the database, then exit). First it waits for the database, saying what is
missing while it waits; then it replaces itself with the role's process, so that the
container's signals reach gunicorn or Celery directly."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from offgridperf.database import CONNECT_TIMEOUT_S, DatabaseSetupError, ensure_postgres_database
from offgridperf.env import env_int
from offgridperf.management.commands.runall import (
    ProcessSpec,
    beat_process,
    loadgen_process,
    monitor_process,
    target_process,
    web_process,
    worker_process,
)

ROLES = ("web", "worker", "loadgen", "beat", "target", "monitor", "migrate")
WAIT_POLL_S = 1.0


def role_process(role: str, *, host: str, port: int, node: str) -> ProcessSpec:
    """The process of a long-running role; `node` names its Celery node (`node@<hostname>`)."""
    builders: dict[str, Callable[[], ProcessSpec]] = {
        "web": lambda: web_process(host, port),
        "worker": lambda: worker_process(node or "worker"),
        "loadgen": lambda: loadgen_process(node or "loadgen"),
        "beat": beat_process,
        "target": lambda: target_process(host),
        "monitor": monitor_process,
    }
    return builders[role]()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _where() -> str:
    db = settings.DATABASES["default"]
    if not settings.DATABASE_IS_POSTGRES:
        return f"SQLite at {db['NAME']}"
    return f"PostgreSQL database {db['NAME']!r} on {db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"


def database_problem() -> str | None:
    """Why the database cannot be used now, in one line; None when it can. A plain connection,
    not Django's pool, which would retry quietly for its own timeout and log each attempt."""
    if not settings.DATABASE_IS_POSTGRES:
        return None
    import psycopg

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            dbname=db["NAME"],
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            connect_timeout=CONNECT_TIMEOUT_S,
        ).close()
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


def server_problem() -> str | None:
    """For migrate: the PostgreSQL server answers (the database itself may still be missing:
    migrate creates it)."""
    if not settings.DATABASE_IS_POSTGRES:
        return None
    db = settings.DATABASES["default"]
    try:
        ensure_postgres_database(
            db["NAME"], host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"]
        )
    except DatabaseSetupError as exc:
        return str(exc)
    return None


class Command(BaseCommand):
    help = (
        "Run one role (web, worker, loadgen, beat, target, monitor, migrate) in the foreground "
        "once the database answers: a container's command."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", choices=ROLES)
        parser.add_argument(
            "--host",
            default=os.environ.get("BIND_HOST", "127.0.0.1"),
            help="address web and target listen on (BIND_HOST; default 127.0.0.1)",
        )
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000") or 8000))
        parser.add_argument(
            "--node",
            default=os.environ.get("CELERY_NODE_NAME", ""),
            help="Celery node name of worker and loadgen, before @<hostname> (CELERY_NODE_NAME)",
        )
        parser.add_argument(
            "--wait",
            type=int,
            default=None,
            help="seconds to wait for the database before giving up (DATABASE_WAIT_S; 60)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"]
        try:
            # Read here, not at import: a bad value is one line naming the variable.
            port = options["port"] or env_int("PORT", 8000, minimum=1, maximum=65535)
            wait_s = options["wait"]
            if wait_s is None:
                wait_s = env_int("DATABASE_WAIT_S", 60, minimum=0, maximum=3600)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if not 1 <= port <= 65535:
            raise CommandError("--port must be a number from 1 to 65535")
        if wait_s < 0:
            raise CommandError("--wait must be 0 or more seconds")
        if not settings.DATABASE_IS_POSTGRES:
            self._say(f"DATABASE_URL is unset: {_where()}, which no other host or container shares")
        self._wait(server_problem if role == "migrate" else database_problem, wait_s)
        if role == "migrate":
            # Static files are collected into the image when it is built.
            call_command("bootstrap", "--no-static", stdout=self.stdout, stderr=self.stderr)
            return
        spec = role_process(role, host=options["host"], port=port, node=options["node"])
        self._say(f"{role}: {' '.join(spec.argv)}")
        self.stdout.flush()
        os.execv(spec.argv[0], spec.argv)  # noqa: S606 - our own argv, no shell

    def _wait(self, problem: Callable[[], str | None], wait_s: int) -> None:
        deadline = time.monotonic() + wait_s
        said = ""
        while (reason := problem()) is not None:
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"the database did not answer within {wait_s} s ({_where()}): {reason}; "
                    "check DATABASE_URL, that the server runs and that the migrate role has run"
                )
            if reason != said:
                self._say(f"waiting for the database ({_where()}): {reason}")
                said = reason
            time.sleep(WAIT_POLL_S)

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
