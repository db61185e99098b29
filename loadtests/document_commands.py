"""`manage.py loadtest export`, `loadtest import` and `loadtest import-har`: load-test
documents in and out, so definitions can live in git, and journeys recorded in a browser in.
The `loadtest` command hands these actions here.

  loadtest export NAME [-o FILE]
  loadtest import FILE... [--dry-run] [--if-missing]
  loadtest import-har FILE --name NAME [--include-static] [--max-think S] [--dry-run]

Import creates or updates each definition by name, all documents of one file or none of them
(a file holds one document or a JSON list of them). It prints one line per definition:
created, updated (with the fields that change), unchanged, or kept (--if-missing). Exit
status: 0 when every file was imported, 1 when one was refused (the message names the file,
the document and each field by its path, e.g. steps[2].path), 2 on a usage error.

Import-har turns a HAR file into a flow document (loadtests/har.py) and registers it the same
way, printing each step it kept (with what it changed) and each entry it skipped and why;
exit status 1 when the file or the document is refused, with nothing registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from loadtests import documents, har
from loadtests.models import LoadTestDefinition
from loadtests.validators import host_is_allowed

ACTIONS = ("export", "import", "import-har")


def add_subcommands(sub: Any) -> None:
    export = sub.add_parser("export", help="print a definition's document (secrets left out)")
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    imports = sub.add_parser("import", help="create or update definitions from documents")
    imports.add_argument("files", nargs="+", metavar="FILE")
    imports.add_argument(
        "--dry-run", action="store_true", help="say what would change and change nothing"
    )
    imports.add_argument(
        "--if-missing", action="store_true", help="leave definitions that exist as they are"
    )
    add_har_subcommand(sub)


def add_har_subcommand(sub: Any) -> None:
    recorded = sub.add_parser(
        "import-har", help="a flow definition from a browser recording (a HAR file)"
    )
    recorded.add_argument("file", metavar="FILE")
    recorded.add_argument("--name", required=True, help="the definition's name")
    recorded.add_argument(
        "--include-static", action="store_true",
        help="keep images, fonts, style sheets and scripts (skipped by default)",
    )  # fmt: skip
    recorded.add_argument(
        "--max-think", type=float, default=har.DEFAULT_MAX_THINK_S, metavar="S",
        help="cap each recorded pause between requests at S seconds (default "
        f"{har.DEFAULT_MAX_THINK_S:g})",
    )  # fmt: skip
    recorded.add_argument(
        "--dry-run", action="store_true", help="say what would be kept and register nothing"
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    if options["action"] == "export":
        export(command, options["name"], options.get("output"))
    elif options["action"] == "import-har":
        import_har(command, options)
    else:
        import_files(command, options["files"], dry_run=options["dry_run"],
                     if_missing=options["if_missing"])  # fmt: skip


def export(command: BaseCommand, name: str, output: str | None) -> None:
    definition = LoadTestDefinition.objects.filter(name=name).first()
    if definition is None:
        raise CommandError(f"There is no load-test definition named {name!r}.", returncode=2)
    text = json.dumps(documents.document_of(definition), indent=2, ensure_ascii=False) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        command.stderr.write(f"wrote {name} to {output}")
    else:
        command.stdout.write(text, ending="")


def import_files(
    command: BaseCommand, files: list[str], *, dry_run: bool, if_missing: bool
) -> None:
    refused = 0
    for name in files:
        result = documents.import_file(Path(name), dry_run=dry_run, if_missing=if_missing)
        if result.error:
            refused += 1
            command.stderr.write(f"{name}: not imported: {result.error}")
            continue
        for change in result.changes:
            would = dry_run and change.action in ("created", "updated")
            command.stdout.write(f"{name}: {'would be ' if would else ''}{change}")
    if refused:
        raise CommandError(f"{refused} of {len(files)} file(s) not imported.", returncode=1)


def import_har(command: BaseCommand, options: dict[str, Any]) -> None:
    """Read, convert and register one recording: all of it, or nothing when any part is
    refused."""
    name, path = options["name"], Path(options["file"])
    if options["max_think"] < 0:
        raise CommandError(f"--max-think {options['max_think']:g}: give 0 or more seconds",
                           returncode=2)  # fmt: skip
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: cannot read it ({exc.strerror})", returncode=2) from None
    try:
        recording = har.flow_document(
            har.parse_har(data),
            name=name,
            host_allowed=host_is_allowed,
            include_static=options["include_static"],
            max_think_s=options["max_think"],
            source=path.name,
        )
    except har.HarInvalid as exc:
        raise CommandError(f"{path}: not imported: {exc}", returncode=1) from None
    for outcome in recording.outcomes():
        command.stdout.write(str(outcome))
    try:
        change = documents.apply_document(recording.document, dry_run=options["dry_run"])
    except documents.DocumentInvalid as exc:
        message = f"{path}: not imported: {documents.problems_text(exc)}"
        raise CommandError(message, returncode=1) from None
    would = options["dry_run"] and change.action in ("created", "updated")
    command.stdout.write(f"{path}: {'would be ' if would else ''}{change}")
