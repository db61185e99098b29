"""Running a profiling tool (py-spy, memray) as a child process. No Django.

One rule for every tool: each call has a timeout, so a capture never hangs, and a failure comes
back as the tool's own last words, with the fix added where we know it (ptrace refused).
"""

from __future__ import annotations

import subprocess


class ToolError(Exception):
    """A tool failed; the message is its own last words, with what to do where known."""


def run(
    command: list[str],
    *,
    timeout_s: float,
    tool: str,
    error: type[ToolError] = ToolError,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`command`'s result when it exits 0 within `timeout_s`, else `error` naming `tool`."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed executable and our own arguments
            command, capture_output=True, text=True, timeout=timeout_s, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        raise error(f"{tool} did not finish within {timeout_s:.0f} s and was stopped") from None
    except OSError as exc:
        raise error(f"cannot run {tool} ({command[0]}): {exc.strerror or exc}") from None
    if result.returncode != 0:
        raise error(explain(last_words(result)))
    return result


def last_words(result: subprocess.CompletedProcess[str], default: str = "no output") -> str:
    """The tool's last error line, or its last line when none says error."""
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line]
    return (errors or lines or [default])[-1].strip()


PTRACE_REFUSED = ("permission denied", "operation not permitted", "permission to trace")


def explain(message: str) -> str:
    """`message` with the fix appended when it is a refused ptrace."""
    lowered = message.lower()
    if any(words in lowered for words in PTRACE_REFUSED):
        return (
            f"{message}: ptrace was refused; run the worker as the process' user or as root, "
            "or give it CAP_SYS_PTRACE"
        )
    return message
