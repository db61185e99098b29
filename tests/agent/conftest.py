from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.processes import answers, wait_for

REPOSITORY = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "thirdparty"
KEY = "shared-agent-key-for-the-third-party-test"


@dataclass
class Shop:
    url: str
    key: str
    redis_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def agent_installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent as a team gets it: pip-installed from the repository into its own site."""
    site = tmp_path_factory.mktemp("agent-site")
    # From a copy of the repository's folder: setuptools builds in place (build/, egg-info).
    source = tmp_path_factory.mktemp("agent-source") / "agent"
    shutil.copytree(
        REPOSITORY / "agent", source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, cwd=tmp_path_factory.getbasetemp(), timeout=300,
    )  # fmt: skip
    assert (site / "offgridperf_agent" / "middleware.py").exists()
    return site


@pytest.fixture(scope="session")
def shop(agent_installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The third-party project served by real gunicorn (2 workers), the agent installed."""
    work = tmp_path_factory.mktemp("shop")
    env = {
        **os.environ,
        # Only the pip-installed agent and the project: not the repository's agent/ folder.
        "PYTHONPATH": f"{agent_installed}{os.pathsep}{PROJECT}",
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DATABASE": str(work / "shop.sqlite3"),
        "SHOP_AGENT_REDIS_URL": settings.REDIS_URL,
        "SHOP_AGENT_KEY": KEY,
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        check=True, cwd=work, env=env, timeout=120,
    )  # fmt: skip
    port = _free_port()
    log = (work / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "shop.wsgi:application"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/books"), 60, "the shop answering")
        yield Shop(url=url, key=KEY, redis_url=settings.REDIS_URL)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
