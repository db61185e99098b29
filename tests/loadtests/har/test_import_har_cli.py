"""`loadtest import-har`: a recording registered as a flow definition, like `loadtest import`,
saying what it kept and skipped; the recorded Authorization never stored; a bad file refused
naming the entry, with nothing registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests import documents
from loadtests.models import LoadTestDefinition, LoadTestStep
from tests.loadtests.har.recordings import BASE, entry, har_bytes
from tests.loadtests.test_runs import run_cli

pytestmark = pytest.mark.django_db

RECORDED_SECRET = "Bearer recorded-secret-5f1c"


def recording(tmp_path: Path, *entries: dict) -> str:
    path = tmp_path / "journey.har"
    path.write_bytes(har_bytes(*entries))
    return str(path)


def journey(tmp_path: Path) -> str:
    return recording(
        tmp_path,
        entry("GET", "/reports/", headers={"Authorization": RECORDED_SECRET}),
        entry("GET", "/static/site.css", mime="text/css", at_s=0.1),
        entry(
            "GET",
            "/api/totals/?year=2026",
            at_s=1.2,
            mime="application/json",
            headers={"Authorization": RECORDED_SECRET},
        ),  # fmt: skip
    )


def stored_text() -> str:
    """Everything stored of every definition: rows as the database holds them."""
    rows = list(LoadTestStep.objects.values()) + list(LoadTestDefinition.objects.values())
    return json.dumps(rows, default=str)


def test_it_registers_the_recording_and_says_what_it_kept_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHORIZATION", "Bearer replay-token")
    path = journey(tmp_path)
    code, out, err = run_cli("import-har", path, "--name", "reports journey", "--dry-run")
    assert code == 0, err
    assert out.splitlines()[-1] == f"{path}: would be created reports journey"
    assert not LoadTestDefinition.objects.exists()

    code, out, err = run_cli("import-har", path, "--name", "reports journey", "--max-think", "0.5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"kept entries[0] (GET {BASE}/reports/) as step 'GET /reports/' "
        "(Authorization as ${AUTHORIZATION})"
    )
    assert lines[1].startswith(f"skipped entries[1] (GET {BASE}/static/site.css): a static asset")
    assert lines[-1] == f"{path}: created reports journey"
    definition = LoadTestDefinition.objects.get(name="reports journey")
    assert definition.mode == "flow"
    assert (definition.think_time_min_s, definition.think_time_max_s) == (0.5, 0.5)
    assert [step.path for step in definition.steps.order_by("order")] == [
        "/reports/",
        "/api/totals/?year=2026",
    ]


def test_the_recorded_authorization_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journey(tmp_path)
    monkeypatch.delenv("AUTHORIZATION", raising=False)
    code, _, err = run_cli("import-har", path, "--name", "reports journey")
    assert code == 1
    assert "Set the environment variable AUTHORIZATION" in err
    assert not LoadTestDefinition.objects.exists()

    monkeypatch.setenv("AUTHORIZATION", "Bearer replay-token")
    code, _, err = run_cli("import-har", path, "--name", "reports journey")
    assert code == 0, err
    definition = LoadTestDefinition.objects.get(name="reports journey")
    assert "recorded-secret" not in stored_text()
    assert "recorded-secret" not in json.dumps(documents.freeze_definition(definition))
    assert definition.steps.first().headers == {"Authorization": "Bearer replay-token"}
    assert documents.document_of(definition)["steps"][0]["headers"] == {
        "Authorization": "${AUTHORIZATION}"
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"log": {"entries": [', "the JSON ends early at line 1: a truncated file"),
        (b'{"log": {"entries": [{"time": 3}]}}', "entries[0]: the entry has no request"),
        (b"[1, 2]", "not a HAR file: it has no log.entries list"),
    ],
)
def test_a_bad_file_registers_nothing(tmp_path: Path, data: bytes, message: str) -> None:
    existing = LoadTestDefinition.objects.create(
        name="reports journey", target_base_url=BASE, duration_s=30
    )
    LoadTestStep.objects.create(definition=existing, name="home", path="/")
    before = stored_text()
    path = tmp_path / "broken.har"
    path.write_bytes(data)
    code, out, err = run_cli("import-har", str(path), "--name", "reports journey")
    assert code == 1
    assert err.startswith(f"{path}: not imported: {message}")
    assert out == ""
    assert stored_text() == before


def test_a_document_the_rules_refuse_registers_nothing(tmp_path: Path) -> None:
    path = recording(tmp_path, entry("GET", "/reports/"))
    code, _, err = run_cli("import-har", path, "--name", "")
    assert code == 1
    assert "name" in err
    assert not LoadTestDefinition.objects.exists()
