"""What the image's final stage must do as root, before it drops to the runtime user."""

from __future__ import annotations

from tests.conftest import ROOT


def final_stage_lines() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = text.split("\nFROM ")
    return [line.strip() for line in stages[-1].splitlines() if line.strip()]


def test_the_venvs_gdb_runs_once_as_root_before_the_runtime_user() -> None:
    # The gdb that requirements.txt installs (allocation captures) symlinks libpython into the
    # venv on its first run. The runtime user cannot write the venv: without this first run
    # as root, every allocation capture in a container would be refused.
    lines = final_stage_lines()
    copied = next(
        i for i, line in enumerate(lines) if line.startswith("COPY --from=build /opt/venv")
    )
    ran = next(i for i, line in enumerate(lines) if line.startswith("RUN /opt/venv/bin/gdb "))
    user = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert copied < ran < user
