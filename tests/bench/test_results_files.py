"""A benchmark's figures are stored with what they were measured on."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench import results


def test_it_stores_the_figures_with_commit_date_machine_and_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    path = results.write("shards", "2 shards / 1 shard = 1.9", 0, 42.0)
    text = path.read_text()
    assert path.parent == tmp_path and path.name.startswith("shards-")
    for field in ("commit", "date", "CPU", "cores", "memory", "Python", "PostgreSQL", "Redis"):
        assert f"- {field}: " in text
    assert "2 shards / 1 shard = 1.9" in text


def test_the_tee_keeps_what_it_shows() -> None:
    screen = io.StringIO()
    tee = results.Tee(screen)
    print("p95 2.4 ms", file=tee)
    assert screen.getvalue() == tee.copy.getvalue() == "p95 2.4 ms\n"
