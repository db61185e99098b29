"""The product as `make run` starts it with no environment: SQLite under its own var dir, the
embedded Redis (cache and broker) and the other processes `runall` starts.

Everything runs in subprocesses with a clean environment (no DATABASE_URL, REDIS_URL or
CELERY_BROKER_URL, no .env file), so this pytest process keeps the suite's PostgreSQL and Redis
settings while the product under test gets the embedded default. One start is shared by the
module's tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, closed_port
from tests.processes import Runall, answers, wait_for

REFERENCE_TESTS = sorted((ROOT / "emissions" / "loadtests").glob("*.json"))
START_TIMEOUT_S = 120
# A 2-shard run needs two generators at once.
LOADGEN_WORKERS = 2


@dataclass
class DefaultProduct:
    runall: Runall
    env: dict[str, str]
    var_dir: Path

    def manage(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        """`manage.py ARGS` with the product's environment, as a newcomer would type it."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def shell(self, code: str, timeout_s: float = 120) -> object:
        """Run `code` in `manage.py shell`; it sets `result`, printed and read back as JSON."""
        script = f"import json\nresult = None\n{code}\nprint('RESULT=' + json.dumps(result))\n"
        done = self.manage("shell", "-c", script, timeout_s=timeout_s)
        assert done.returncode == 0, done.stderr[-3000:]
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT=")][-1]
        return json.loads(line.removeprefix("RESULT="))


def default_env(var_dir: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: nothing of ours set but the ports and the var
    dir (in a temporary directory, so the suite never touches the checkout's var/)."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    env.update(
        OFFGRIDPERF_LOCAL="1",
        OFFGRIDPERF_ENV_FILE="",
        OFFGRIDPERF_VAR_DIR=str(var_dir),
        PORT=str(closed_port()),
        TARGET_PORT=str(closed_port()),
        RUNALL_LOADGEN_WORKERS=str(LOADGEN_WORKERS),
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare(product: DefaultProduct) -> None:
    """What the Makefile's `run` target does before runall."""
    steps = [
        ["bootstrap"],
        ["seed_emissions", "--if-empty"],
        ["loadtest", "import", "--if-missing", *map(str, REFERENCE_TESTS)],
        ["queryopt", "target", "add", "emissions", "--from-database-url", "--if-missing"],
        # The Makefile's match, and the port: in parallel runs other products' targets on this
        # host match the Makefile's words too, and the oldest match would win.
        ["profile", "target", "add", "emissions", "--if-missing", "--children", "--cmdline",
         "offgridperf.wsgi:application --env OFFGRIDPERF_ROLE=target "
         f"--bind 127.0.0.1:{product.env['TARGET_PORT']}"],
    ]  # fmt: skip
    for step in steps:
        done = product.manage(*step)
        assert done.returncode == 0, f"{step}: {done.stdout[-2000:]} {done.stderr[-3000:]}"


@contextlib.contextmanager
def started_default_product(home: Path, **extra_env: str) -> Iterator[DefaultProduct]:
    """The product as `make run` starts it with no environment, its var dir under `home`:
    prepared, then `runall` (with `extra_env` too) until its web and target answer."""
    var_dir = home / "var"
    product = DefaultProduct(runall=None, env=default_env(var_dir), var_dir=var_dir)  # type: ignore[arg-type]
    prepare(product)
    product.env = {**product.env, **extra_env}
    log = home / "runall.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runall"],
            cwd=ROOT,
            env=product.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    product.runall = Runall(proc, int(product.env["PORT"]), int(product.env["TARGET_PORT"]), log)
    try:
        wait_for(
            lambda: (
                answers(f"{product.runall.target_url}/healthz")
                and answers(f"{product.runall.web_url}/healthz")
            ),
            START_TIMEOUT_S,
            "runall's web, target and workers",
        )
        yield product
    finally:
        product.runall.stop()


@pytest.fixture(scope="module")
def default_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefaultProduct]:
    home = tmp_path_factory.mktemp("default")
    with started_default_product(home, PROFILING_AGENT="1") as product:
        yield product
