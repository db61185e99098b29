"""Where a benchmark's figures are kept: var/bench-results/<name>-<UTC time>.md, with what
they were measured on (commit, date, CPU, cores, memory, Python, PostgreSQL and Redis
versions), so a figure quoted in the docs names the file it came from and can be reproduced.
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "var" / "bench-results"


class Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy, so the table printed is the table stored."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.copy.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return f"{commit} (with uncommitted changes)" if dirty else commit or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _postgresql() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return "not used (DATABASE_URL is not PostgreSQL)"
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"
    except Exception as exc:  # noqa: BLE001 - a figure's context, never a reason to fail
        return f"unknown ({type(exc).__name__})"


def _redis() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return "not used (REDIS_URL unset)"
    try:
        import redis

        info = redis.Redis.from_url(url, socket_timeout=3).info("server")
        return str(info.get("redis_version", "unknown"))
    except Exception as exc:  # noqa: BLE001 - a figure's context, never a reason to fail
        return f"unknown ({type(exc).__name__})"


def environment() -> dict[str, str]:
    return {
        "commit": _git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "memory": _memory(),
        "Python": sys.version.split()[0],
        "PostgreSQL": _postgresql(),
        "Redis": _redis(),
    }


def write(name: str, output: str, status: int, seconds: float) -> Path:
    """Store one benchmark's printed figures with the environment; the file's path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.md"
    lines = [f"# bench {name}", ""]
    lines += [f"- {key}: {value}" for key, value in environment().items()]
    lines += [f"- exit status: {status}", f"- took: {seconds:.0f} s", "", "```", output, "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
