"""The import boundaries `make lint` checks: they hold today, and each one fails when a
forbidden import is added (on a copy of the packages, checked with the same contracts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("offgridperf", "loadtests", "emissions", "profiling", "queryopt", "stats")
# The target agent is installed from its own folder, not a package at the root.
AGENT = "agent/offgridperf_agent"
BROKEN = re.compile(r" BROKEN( \(\d+ ignored imports?\))?$")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # The agent of `root`, not the one the environment has installed (an editable install
    # points at another checkout).
    env = {**os.environ, "PYTHONPATH": str(root / "agent")}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(ROOT / AGENT, tmp_path / AGENT, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_it_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Each forbidden import and the one contract it must break. They are checked a batch at a time
# (one copy, one lint-imports run): a batch never holds two imports that break the same
# contract, so each broken contract's report names the one import that broke it.
FORBIDDEN_IMPORTS = [
    ("loadtests/engine/http.py", "import django", "loadtests.engine imports no"),
    ("queryopt/capture.py", "import loadtests.engine.http", "queryopt imports no loadtests"),
    ("loadtests/engine/config.py", "import offgridperf.env", "loadtests.engine imports no"),
    ("loadtests/engine/runner.py", "import loadtests.models", "loadtests.engine imports no"),
    ("loadtests/engine/results.py", "import profiling", "loadtests.engine imports no"),
    ("loadtests/views.py", "import queryopt.models", "loadtests imports no queryopt"),
    ("queryopt/plans.py", "import django", "queryopt's analysis modules import no Django"),
    ("emissions/models.py", "import loadtests.models", "emissions imports no tool app"),
    ("emissions/views.py", "import profiling", "emissions imports no tool app"),
    ("offgridperf/cache/__init__.py", "import emissions.models", "offgridperf imports no"),
    ("emissions/services.py", "import emissions.tasks", "emissions imports run one way"),
    ("emissions/models.py", "import emissions.services", "emissions imports run one way"),
    ("loadtests/documents.py", "import loadtests.tasks", "loadtests imports run one way"),
    ("loadtests/services.py", "import loadtests.tasks", "loadtests imports run one way"),
    ("loadtests/alerts.py", "import loadtests.tasks", "loadtests imports run one way"),
    ("loadtests/lifecycle.py", "import loadtests.views", "loadtests imports run one way"),
    ("queryopt/services.py", "import queryopt.views", "queryopt imports run one way"),
    ("profiling/models.py", "import profiling.pages", "profiling imports run one way"),
    ("offgridperf/cache/pages.py", "import offgridperf.cache.views", "the cache package imports"),
    (f"{AGENT}/middleware.py", "import loadtests.models", "offgridperf_agent imports nothing"),
    (f"{AGENT}/aggregate.py", "import stats.histogram", "offgridperf_agent imports nothing"),
    ("loadtests/pages.py", "import offgridperf_agent.tags", "the workbench imports"),
    ("queryopt/services.py", "import offgridperf_agent", "the workbench imports"),
]


def batches(cases: list[tuple[str, str, str]]) -> list[list[tuple[str, str, str]]]:
    """The cases in as few batches as can hold them with no contract twice in one batch."""
    found: list[list[tuple[str, str, str]]] = []
    for case in cases:
        batch = next((b for b in found if all(case[2] != other[2] for other in b)), None)
        if batch is None:
            found.append(batch := [])
        batch.append(case)
    return found


def dotted(module: str) -> str:
    path = module.removeprefix("agent/").removesuffix(".py").removesuffix("/__init__")
    return path.replace("/", ".")


def broken_sections(stdout: str) -> dict[str, str]:
    """Each broken contract's name and its report, from lint-imports' "Broken contracts"."""
    lines = stdout.split("Broken contracts", 1)[-1].splitlines()
    # A contract's report starts with its name underlined by dashes.
    starts = [
        i for i in range(1, len(lines)) if lines[i] and set(lines[i]) == {"-"} and lines[i - 1]
    ]
    return {
        lines[at - 1]: "\n".join(lines[at + 1 : next_at - 1])
        for at, next_at in zip(starts, [*starts[1:], len(lines) + 1], strict=True)
    }


@pytest.mark.slow
@pytest.mark.parametrize("batch", batches(FORBIDDEN_IMPORTS), ids=lambda b: f"{len(b)}-imports")
def test_it_breaks_a_contract_when_a_forbidden_import_is_added(
    tmp_path: Path, batch: list[tuple[str, str, str]]
) -> None:
    root = copy_of_the_project(tmp_path)
    added: list[tuple[str, str, int]] = []
    for module, forbidden_import, _ in batch:
        path = root / module
        text = path.read_text()
        path.write_text(text + f"\n{forbidden_import}  # added by the test\n")
        added.append((module, forbidden_import, text.count("\n") + 2))

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    # A contract with ignored imports reads "... BROKEN (4 ignored imports)".
    broken = [line for line in result.stdout.splitlines() if BROKEN.search(line)]
    assert len(broken) == len(batch), result.stdout
    sections = broken_sections(result.stdout)
    assert len(sections) == len(batch), result.stdout
    for (module, forbidden_import, contract), (_, _, at) in zip(batch, added, strict=True):
        assert sum(name.startswith(contract) for name in broken) == 1, (contract, result.stdout)
        report = next(text for name, text in sections.items() if name.startswith(contract))
        imported = forbidden_import.removeprefix("import ")
        assert f"{dotted(module)} -> {imported} (l.{at})" in report, (module, result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "forbidden_import"),
    [("stats/histogram.py", "import django"), ("stats/percentile.py", "import loadtests.engine")],
)
def test_stats_breaks_its_contract_when_it_imports_django_or_ours(
    tmp_path: Path, module: str, forbidden_import: str
) -> None:
    # The engine and the apps import stats, so their contracts may break along with its own.
    root = copy_of_the_project(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{forbidden_import}  # added by the test\n")

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "stats imports no Django and nothing of ours BROKEN" in result.stdout


@pytest.mark.slow
def test_it_breaks_the_settings_contract_when_a_setting_names_another_app_undeclared(
    tmp_path: Path,
) -> None:
    root = copy_of_the_project(tmp_path)
    settings = root / "offgridperf" / "settings.py"
    settings.write_text(
        settings.read_text() + '\nEMISSIONS_PROFILER = "profiling.services.create_capture"\n'
    )
    # Read by the demo, as EMISSIONS_ROW_WRITER is.
    services = root / "emissions" / "services.py"
    services.write_text(
        services.read_text() + '\nPROFILER = getattr(settings, "EMISSIONS_PROFILER", "")\n'
    )

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "every module a setting names from another package is declared BROKEN" in text
    assert (
        "emissions -> profiling.services.create_capture (EMISSIONS_PROFILER): "
        "a setting names this module; declare the edge." in text
    )


@pytest.mark.slow
def test_it_breaks_the_settings_contract_when_a_declared_edge_is_no_longer_made(
    tmp_path: Path,
) -> None:
    root = copy_of_the_project(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '"emissions -> queryopt.batch.copy_rows",',
            '"emissions -> queryopt.batch.copy_rows",\n    "emissions -> profiling.trend",',
        )
    )

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "emissions -> profiling.trend: declared, but no setting names it; remove it." in text


def test_every_loadtests_module_sits_in_its_layers() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(
        c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "loadtests-one-way"
    )
    listed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    package = ROOT / "loadtests"
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    modules |= {path.parent.name for path in package.glob("*/__init__.py")} - {"engine"}
    # The engine is held by its own stricter contract (engine-is-a-library).
    assert modules - listed == set()
    assert listed - modules == set()
