"""`manage.py loadtest export` and `loadtest import`: load-test documents in and out, so
definitions can live in git. The `loadtest` command hands these two actions here.

  loadtest export NAME [-o FILE]
  loadtest import FILE... [--dry-run] [--if-missing]

Import creates or updates each definition by name, all documents of one file or none of them
(a file holds one document or a JSON list of them). It prints one line per definition:
created, updated (with the fields that change), unchanged, or kept (--if-missing). Exit
status: 0 when every file was imported, 1 when one was refused (the message names the file,
the document and each field by its path, e.g. steps[2].path), 2 on a usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from loadtests import documents
from loadtests.models import LoadTestDefinition

ACTIONS = ("export", "import")


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


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    if options["action"] == "export":
        export(command, options["name"], options.get("output"))
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
