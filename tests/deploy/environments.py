"""The environment a container gets, read from the files that set it: the Dockerfile's ENV,
compose.yaml's shared `environment`, and the Kubernetes ConfigMap. The tests run each role's
entrypoint on the host with it, so what the image would run is what the suite runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from tests.conftest import ROOT

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
# Set by compose's env file or the Kubernetes Secret, never committed: the test gives its own.
SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
# The image's, not the host's: the host keeps its own PATH and the test its own var/.
HOST_OWN = ("PATH", "OFFGRIDPERF_VAR_DIR", "STATIC_ROOT")


def dockerfile_env(path: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """ENV of the Dockerfile's final stage (`ENV A=1 \\ B=2` form)."""
    text = path.read_text().replace("\\\n", " ")
    final_stage = re.split(r"(?m)^FROM ", text)[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def compose_env(service: str, path: Path = ROOT / "compose.yaml") -> dict[str, str]:
    """A compose service's `environment` (YAML merge keys resolved)."""
    document = yaml.safe_load(path.read_text())
    return {k: str(v) for k, v in document["services"][service]["environment"].items()}


def configmap_env(path: Path = ROOT / "deploy" / "kubernetes" / "configmap.yaml") -> dict[str, str]:
    return {k: str(v) for k, v in yaml.safe_load(path.read_text())["data"].items()}


def container_env(source: str, service: str) -> dict[str, str]:
    """What a container of `service` gets from `source` ("compose" or "kubernetes") besides
    its secrets, the host's own paths left out."""
    env = dockerfile_env()
    env.update(compose_env(service) if source == "compose" else configmap_env())
    for name in (*HOST_OWN, *SERVICE_URLS):
        env.pop(name, None)
    return env
