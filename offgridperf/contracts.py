"""An import-linter contract for what imports cannot show: modules that settings name.

A dotted path in settings ("queryopt.batch.copy_rows", "loadtests.tasks.execute_run") ties the
package that reads the setting to the module it names, as an import would, but no import
contract sees it. The `settings_edges` contract finds every such path in the settings module
and fails unless the contract declares the edge, so that a tie between two apps is written
down where the other boundaries are, and a declared edge that nothing makes any more goes too.

The package that reads a setting is the one whose code names it (`settings.NAME`, or
"NAME" as in getattr(settings, "NAME")); a setting that no package names is read by Django or
Celery on the settings' own package's behalf. An edge inside one package needs no declaration.
A declared edge "reader -> path" covers the path and every module and name under it.

Loaded by lint-imports only (`contract_types` in pyproject.toml); nothing at run time imports it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output

DOTTED = re.compile(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True, order=True)
class Edge:
    reader: str
    path: str
    setting: str

    def __str__(self) -> str:
        return f"{self.reader} -> {self.path} ({self.setting})"


class SettingsEdgesContract(Contract):
    """Every dotted path the settings module names, from a package other than the reader's, is
    declared in `edges` ("reader -> dotted.path"), and every declared edge is made."""

    settings_module = fields.StringField()
    packages = fields.ListField(subfield=fields.StringField())
    edges = fields.ListField(subfield=fields.StringField(), required=False, default=[])

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        declared = [_parse_declaration(text) for text in self.edges]
        found = sorted(self._edges(graph))
        undeclared = [edge for edge in found if not _covered(edge, declared)]
        unused = [
            f"{reader} -> {path}"
            for reader, path in declared
            if not any(_covered(edge, [(reader, path)]) for edge in found)
        ]
        return ContractCheck(
            kept=not undeclared and not unused,
            metadata={"undeclared": [str(edge) for edge in undeclared], "unused": unused},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for edge in check.metadata["undeclared"]:
            output.print_error(f"{edge}: a setting names this module; declare the edge.")
            output.new_line()
        for edge in check.metadata["unused"]:
            output.print_error(f"{edge}: declared, but no setting names it; remove it.")
            output.new_line()

    def _edges(self, graph: ImportGraph) -> Iterator[Edge]:
        packages: list[str] = list(self.packages)
        settings_module: str = str(self.settings_module)
        own = settings_module.split(".")[0]
        paths = list(_named_paths(_source(settings_module), packages))
        readers = _readers({setting for setting, _ in paths}, packages, settings_module)
        for setting, path in paths:
            if not _names_a_module(path, graph):
                continue
            for reader in readers.get(setting) or {own}:
                if reader != path.split(".")[0]:
                    yield Edge(reader, path, setting)


def _parse_declaration(text: str) -> tuple[str, str]:
    reader, _, path = (part.strip() for part in text.partition("->"))
    if not reader or not DOTTED.fullmatch(path):
        raise ValueError(f"edges: {text!r} is not 'package -> dotted.path'")
    return reader, path


def _covered(edge: Edge, declared: list[tuple[str, str]]) -> bool:
    return any(
        edge.reader == reader and (edge.path == path or edge.path.startswith(path + "."))
        for reader, path in declared
    )


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"settings_module: there is no module {module!r}")
    return Path(spec.origin)


def _named_paths(settings: Path, packages: list[str]) -> Iterator[tuple[str, str]]:
    """(setting, dotted path into one of `packages`) for every string the settings assign."""
    # Every assignment, also those under an `if` (settings chosen by role or database).
    for node in ast.walk(ast.parse(settings.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if not isinstance(target, ast.Name) or not target.id.isupper():
                continue
            for value in ast.walk(node.value):
                if (
                    isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and DOTTED.fullmatch(value.value)
                    and value.value.split(".")[0] in packages
                ):
                    yield target.id, value.value


def _names_a_module(path: str, graph: ImportGraph) -> bool:
    """True when `path` is a module of the graph, or a name in one (module.function)."""
    return path in graph.modules or path.rpartition(".")[0] in graph.modules


def _readers(settings: set[str], packages: list[str], settings_module: str) -> dict[str, set]:
    """For each setting, the packages whose code names it (the settings module left out)."""
    readers: dict[str, set] = {}
    skip = _source(settings_module)
    for package in packages:
        root = _source(package).parent
        for path in root.rglob("*.py"):
            if path == skip or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = (
                    node.attr
                    if isinstance(node, ast.Attribute)
                    else node.value
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    else None
                )
                if name in settings:
                    readers.setdefault(name, set()).add(package)
    return readers
