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


# Ports inside a container, and the environment variable that holds the test's own instead.
CONTAINER_PORTS = {"8000": "PORT", "8001": "TARGET_PORT"}


def _host_ports(argv: list[str], env: dict[str, str]) -> list[str]:
    return [env[CONTAINER_PORTS[a]] if a in CONTAINER_PORTS else a for a in argv]


def compose_checks(service: str, env: dict[str, str]) -> list[list[str]]:
    """The service's compose healthcheck as an argv for the host ($$ is compose's $)."""
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    check = document["services"][service].get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test:
        return []
    test = [part.replace("$$", "$") for part in test]
    if test[0] == "CMD-SHELL":
        return [["sh", "-c", test[1]]]
    return [_host_ports(test[1:], env)]


def kubernetes_checks(role: str, env: dict[str, str]) -> list[list[str]]:
    """The probes of the role's container in deploy/kubernetes/<role>.yaml, as argvs: exec
    probes as they are, httpGet ones as a request with their path and Host header."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / f"{role}.yaml").read_text())
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: str(p["containerPort"]) for p in container.get("ports", [])}
    checks = []
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        if "exec" in probe:
            checks.append(probe["exec"]["command"])
            continue
        http = probe["httpGet"]
        port = ports.get(str(http["port"]), str(http["port"]))
        host = {h["name"]: h["value"] for h in http.get("httpHeaders", [])}.get("Host", "")
        url = f"http://127.0.0.1:{_host_ports([port], env)[0]}{http['path']}"
        checks.append(["python", "-c", HTTP_PROBE, url, host])
    return checks


# What the kubelet's httpGet probe does: success is a status from 200 to 399.
HTTP_PROBE = (
    "import sys, urllib.request; r = urllib.request.Request(sys.argv[1], "
    "headers={'Host': sys.argv[2]} if sys.argv[2] else {}); "
    "sys.exit(0 if 200 <= urllib.request.urlopen(r, timeout=3).status < 400 else 1)"
)
