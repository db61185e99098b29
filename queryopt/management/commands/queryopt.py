"""The query optimizer from the command line.

  queryopt target add NAME --dsn DSN [--slow-ms N] [--interval S] [--if-missing]
  queryopt target add NAME --from-database-url [--if-missing]   (this app's own PostgreSQL;
      nothing to do, exit 0, when DATABASE_URL is SQLite: `make run` calls it every start)
  queryopt target list
  queryopt snapshot [--target NAME]

Exit 0 on success, 2 on error with one line naming the cause. No output ever shows a DSN's
password: DSNs are printed masked, errors redacted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from queryopt import services, targets
from queryopt.dsn import mask_dsn, redact


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


class Command(BaseCommand):
    help = "Query optimizer targets and pg_stat_statements snapshots."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        target = commands.add_parser("target", help="Add or list target databases.")
        target_commands = target.add_subparsers(dest="target_command", required=True)
        add = target_commands.add_parser("add", help="Register a target database.")
        add.add_argument("name")
        source = add.add_mutually_exclusive_group(required=True)
        source.add_argument("--dsn", help="postgresql://user:password@host:port/dbname")
        source.add_argument(
            "--from-database-url",
            action="store_true",
            help="This app's own database (DATABASE_URL), when it is PostgreSQL.",
        )
        add.add_argument("--slow-ms", type=int, default=100, help="Slow threshold (ms).")
        add.add_argument("--interval", type=int, default=60, help="Polling interval (s).")
        add.add_argument("--if-missing", action="store_true", help="Keep an existing target.")
        target_commands.add_parser("list", help="List the targets (DSNs masked).")
        snapshot = commands.add_parser("snapshot", help="Snapshot pg_stat_statements now.")
        snapshot.add_argument("--target", help="Only this target (default: every enabled one).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["command"] == "snapshot":
            self._snapshot(options["target"])
        elif options["target_command"] == "add":
            self._add(options)
        else:
            self._list()

    def _add(self, options: dict[str, Any]) -> None:
        dsn = options["dsn"]
        if options["from_database_url"]:
            if not settings.DATABASE_IS_POSTGRES:
                self.stdout.write("DATABASE_URL is not PostgreSQL: no query target registered.")
                return
            dsn = services.own_database_dsn()
        try:
            target, created = services.add_target(
                options["name"],
                dsn,
                slow_threshold_ms=options["slow_ms"],
                polling_interval_s=options["interval"],
                if_missing=options["if_missing"],
            )
        except services.TargetProblem as exc:
            raise _fail(str(exc)) from None
        if not created:
            self.stdout.write(f"query target {target.name!r} exists: left as it is")
            return
        self.stdout.write(f"added query target {target.name!r}: {mask_dsn(target.dsn)}")
        problem = services.check_target(target)
        if problem:
            self.stderr.write(f"warning: {problem}")

    def _list(self) -> None:
        for target in services.QueryTarget.objects.all():
            state = "enabled" if target.enabled else "disabled"
            last = (
                f"{target.last_snapshot_at:%Y-%m-%d %H:%M:%S}" if target.last_snapshot_at else "-"
            )
            error = redact(f"  error: {target.last_error}", target.dsn) if target.last_error else ""
            self.stdout.write(
                f"{target.name}\t{mask_dsn(target.dsn)}\t{state}\tslow>{target.slow_threshold_ms}ms"
                f"\tevery {target.polling_interval_s}s\tlast snapshot {last}{error}"
            )

    def _snapshot(self, name: str | None) -> None:
        chosen = services.QueryTarget.objects.filter(enabled=True)
        if name:
            chosen = services.QueryTarget.objects.filter(name=name)
            if not chosen:
                raise _fail(f"--target {name!r}: no such query target")
        if not chosen:
            self.stdout.write("no enabled query targets: add one with `queryopt target add`")
            return
        problems = []
        for target in chosen:
            try:
                snapshot = services.take_snapshot(target)
            except targets.TargetError as exc:
                problems.append(f"{target.name}: {exc}")
                continue
            self.stdout.write(
                f"{target.name}: snapshot {snapshot.pk}, {snapshot.deltas.count()} statements ran"
            )
        if problems:
            raise _fail("; ".join(problems))
