"""The query optimizer from the command line.

  queryopt target add NAME --dsn DSN [--slow-ms N] [--interval S] [--if-missing]
  queryopt target add NAME --from-database-url [--if-missing]   (this app's own PostgreSQL;
      nothing to do, exit 0, when DATABASE_URL is SQLite: `make run` calls it every start)
  queryopt target set NAME --dsn DSN   (keeping the masked password only when the host, port,
      database, user and parameters stay the same)
  queryopt target list
  queryopt snapshot [--target NAME]
  queryopt recommend [--target NAME] [--json]
  queryopt explain --target NAME "SQL" [--analyze] [--json]   (the plan is stored on the
      query's shape, saying whether it changed since the last stored one)

Exit 0 on success, 2 on error with one line naming the cause. No output ever shows a DSN's
password: DSNs are printed masked, errors redacted.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from queryopt import planstore, recommend, services, targets
from queryopt.dsn import mask_dsn, redact
from queryopt.explain import ExplainRefused
from queryopt.models import PlanSource
from queryopt.plans import PlanRow, plan_problems, plan_rows


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
        change = target_commands.add_parser("set", help="Point a target at another DSN.")
        change.add_argument("name")
        change.add_argument(
            "--dsn",
            required=True,
            help="The new DSN; its password may be ******** (the stored one) only when the "
            "connection still goes to the same host, port, database and user.",
        )
        target_commands.add_parser("list", help="List the targets (DSNs masked).")
        snapshot = commands.add_parser("snapshot", help="Snapshot pg_stat_statements now.")
        snapshot.add_argument("--target", help="Only this target (default: every enabled one).")
        advise = commands.add_parser("recommend", help="Index recommendations, proven by HypoPG.")
        advise.add_argument("--target", help="Only this target (default: every enabled one).")
        advise.add_argument("--json", action="store_true", help="A JSON list of recommendations.")
        plan = commands.add_parser("explain", help="The plan of one statement on a target.")
        plan.add_argument("--target", required=True, help="The target to plan it on.")
        plan.add_argument("sql", help="One SQL statement.")
        plan.add_argument(
            "--analyze", action="store_true", help="Run it (one SELECT only, rolled back)."
        )
        plan.add_argument("--json", action="store_true", help="The plan JSON, hash and problems.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["command"] == "snapshot":
            self._snapshot(options["target"])
        elif options["command"] == "recommend":
            self._recommend(options["target"], options["json"])
        elif options["command"] == "explain":
            self._explain(options["target"], options["sql"], options["analyze"], options["json"])
        elif options["target_command"] == "add":
            self._add(options)
        elif options["target_command"] == "set":
            self._set(options["name"], options["dsn"])
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
                own_database=options["from_database_url"],
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

    def _set(self, name: str, dsn: str) -> None:
        target = services.QueryTarget.objects.filter(name=name).first()
        if target is None:
            raise _fail(f"name: no query target named {name!r}")
        try:
            services.change_target_dsn(target, dsn)
        except services.TargetProblem as exc:
            raise _fail(str(exc)) from None
        self.stdout.write(f"query target {target.name!r} now uses {mask_dsn(target.dsn)}")

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

    def _chosen(self, name: str | None) -> list[services.QueryTarget]:
        chosen = services.QueryTarget.objects.filter(enabled=True)
        if name:
            chosen = services.QueryTarget.objects.filter(name=name)
            if not chosen:
                raise _fail(f"--target {name!r}: no such query target")
        return list(chosen)

    def _snapshot(self, name: str | None) -> None:
        chosen = self._chosen(name)
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

    def _recommend(self, name: str | None, as_json: bool) -> None:
        chosen = self._chosen(name)
        if not chosen and not as_json:
            self.stdout.write("no enabled query targets: add one with `queryopt target add`")
        advices = []
        for target in chosen:
            try:
                advices.append(recommend.recommend(target))
            except targets.TargetError as exc:
                raise _fail(f"{target.name}: {exc}") from None
        if as_json:
            rows = [_as_json(a, r, i) for a in advices for i, r in enumerate(_recs(a))]
            self.stdout.write(json.dumps(rows))
            return
        for advice in advices:
            self._write_advice(advice)

    def _write_advice(self, advice: recommend.TargetAdvice) -> None:
        name = advice.target.name
        if not advice.advice.validated:
            problem = advice.hypopg_problem or "HypoPG is not usable"
            self.stdout.write(f"{name}: not validated by the planner ({problem})")
        if not advice.advice.recommendations:
            self.stdout.write(f"{name}: nothing to recommend")
        for rec in advice.advice.recommendations:
            after = f"{rec.cost_after:,.1f}" if rec.cost_after is not None else "not validated"
            saving = f"{rec.saving_pct:.0f}%" if rec.saving_pct is not None else "-"
            self.stdout.write(
                f"\n{name}: {rec.table} ({', '.join(rec.columns)})\n"
                f"  {rec.statement};\n"
                f"  cost {rec.cost_before:,.1f} -> {after}, saving {saving}, "
                f"{rec.total_time_ms:,.1f} ms spent in the queries helped\n"
                f"  fingerprints helped: {', '.join(rec.fingerprints)}"
            )
            hint = advice.preferred_hint(rec)
            if hint is not None:
                self.stdout.write(f"  matches a preferred hint{_note(hint)}")
        for hint in advice.preferred:
            self.stdout.write(
                f"{name}: preferred hint: {hint.table} ({', '.join(hint.columns)}){_note(hint)}"
            )

    def _explain(self, name: str, sql: str, analyze: bool, as_json: bool) -> None:
        (target,) = self._chosen(name)
        try:
            result = recommend.explain_statement(target, sql, analyze=analyze)
        except ExplainRefused as exc:
            raise _fail(f"refused: {exc}") from None
        except targets.TargetError as exc:
            raise _fail(f"{target.name}: {exc}") from None
        problems = [problem.message for problem in plan_problems(result["plan"])]
        shape = planstore.statement_shape(target, sql)
        stored = planstore.store_plan(shape, result, PlanSource.ON_DEMAND)
        previous = planstore.previous_plan(stored)
        if as_json:
            payload = {
                "target": target.name,
                "plan": result["plan"],
                "plan_hash": result["plan_hash"],
                "generic": result["generic"],
                "analyzed": result["analyzed"],
                "problems": problems,
                "plan_id": stored.pk,
                "previous_plan_hash": previous.plan_hash if previous else None,
                "changed": previous.plan_hash != stored.plan_hash if previous else None,
            }
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"plan {result['plan_hash']} on {target.name}")
        self.stdout.write(_change_line(previous, stored.plan_hash))
        for row in plan_rows(result["plan"]):
            self.stdout.write(_plan_line(row))
        for problem in problems:
            self.stdout.write(f"problem: {problem}")


def _recs(advice: recommend.TargetAdvice) -> list[Any]:
    return advice.advice.recommendations


def _note(hint: Any) -> str:
    return f": {hint.note}" if hint.note else ""


def _as_json(advice: recommend.TargetAdvice, rec: Any, position: int) -> dict[str, Any]:
    hint = advice.preferred_hint(rec)
    stored = advice.stored[position] if position < len(advice.stored) else None
    return {
        "target": advice.target.name,
        "table": rec.table,
        "columns": rec.columns,
        "statement": rec.statement,
        "cost_before": rec.cost_before,
        "cost_after": rec.cost_after,
        "saving_pct": rec.saving_pct,
        "total_time_ms": rec.total_time_ms,
        "fingerprints": rec.fingerprints,
        "validated": rec.validated,
        "recommendation_id": stored.pk if stored else None,
        "status": stored.status if stored else None,
        "preferred_hint": {"columns": hint.columns, "note": hint.note} if hint else None,
    }


def _change_line(previous: Any, plan_hash: str) -> str:
    if previous is None:
        return "first plan stored for this query"
    if previous.plan_hash == plan_hash:
        return f"plan unchanged since {previous.captured_at:%Y-%m-%d %H:%M:%S}"
    return f"plan changed: was {previous.plan_hash} at {previous.captured_at:%Y-%m-%d %H:%M:%S}"


def _plan_line(row: PlanRow) -> str:
    where = f" on {row.relation}" if row.relation else ""
    where += f" using {row.index}" if row.index else ""
    rows = f"rows {row.estimated_rows:,.0f} estimated"
    if row.actual_rows is not None:
        rows += f", {row.actual_rows:,.0f} actual x {row.loops} loops"
    share = f", {row.time_share:.0%} of the time" if row.time_share is not None else ""
    return (
        f"{'  ' * row.depth}-> {row.node_type}{where}  "
        f"(cost {row.startup_cost:,.2f}..{row.total_cost:,.2f}, {rows}{share})"
    )
