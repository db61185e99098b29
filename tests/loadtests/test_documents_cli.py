from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from loadtests import documents
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, RunInterval
from stats.histogram import Histogram

pytestmark = pytest.mark.django_db

TOKEN = "Bearer old-shape-secret"


def loadtest(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("loadtest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_then_import_recreates_the_definition(
    definition: LoadTestDefinition, tmp_path: Path
) -> None:
    path = tmp_path / "smoke.json"
    loadtest("export", "smoke", "-o", str(path))
    exported = json.loads(path.read_text())
    assert exported["version"] == 1 and exported["name"] == "smoke"
    definition.delete()
    out, _ = loadtest("import", str(path))
    assert "created smoke" in out
    assert documents.document_of(LoadTestDefinition.objects.get()) == exported
    assert "unchanged smoke" in loadtest("import", str(path))[0]


def test_export_prints_to_stdout_and_names_an_unknown_definition() -> None:
    with pytest.raises(CommandError, match="no load-test definition named 'nope'"):
        loadtest("export", "nope")


def test_import_dry_run_lists_the_changes_and_changes_nothing(
    definition: LoadTestDefinition, tmp_path: Path
) -> None:
    document = documents.document_of(definition)
    document["rate_rps"] = 0.0
    document["users"] = 9
    new = {**document, "name": "brand-new"}
    path = tmp_path / "both.json"
    path.write_text(json.dumps([document, new]))
    before = documents.freeze_definition(definition)
    out, _ = loadtest("import", "--dry-run", str(path))
    assert "would be updated smoke: users" in out
    assert "would be created brand-new" in out
    definition.refresh_from_db()
    assert documents.freeze_definition(definition) == before
    assert LoadTestDefinition.objects.count() == 1


def test_a_refused_file_names_the_field_path_and_leaves_the_others_imported(
    target_url: str, tmp_path: Path
) -> None:
    step = {"name": "ok", "method": "GET", "path": "/ok"}
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"version": 1, "name": "good", "target_base_url": target_url,
                                "steps": [step]}))  # fmt: skip
    bad = tmp_path / "bad.json"
    steps = [step, step, {"name": "x", "method": "GET", "path": "no-slash"}]
    bad.write_text(json.dumps({"version": 1, "name": "bad", "target_base_url": target_url,
                               "steps": steps}))  # fmt: skip
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("loadtest", "import", str(good), str(bad), stdout=StringIO(), stderr=err)
    assert caught.value.returncode == 1
    assert "steps[2].path" in err.getvalue() and "steps[1].name" in err.getvalue()
    assert list(LoadTestDefinition.objects.values_list("name", flat=True)) == ["good"]


def test_the_definition_page_downloads_its_document_without_secrets(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    LoadTestStep.objects.filter(name="ok").update(headers={"Authorization": TOKEN})
    page = admin_client.get(f"/definitions/{definition.pk}/")
    assert f"/definitions/{definition.pk}/document.json" in page.content.decode()
    response = admin_client.get(f"/definitions/{definition.pk}/document.json")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document["steps"][0]["headers"] == {"Authorization": "${AUTHORIZATION}"}
    assert "old-shape-secret" not in response.content.decode()


def test_the_download_needs_a_login(client: Any, definition: LoadTestDefinition) -> None:
    response = client.get(f"/definitions/{definition.pk}/document.json")
    assert response.status_code == 302 and "login" in response["Location"]


# -- a run frozen before documents existed ------------------------------------------------


def old_shape_config(definition: LoadTestDefinition) -> dict[str, Any]:
    """A frozen config as runs stored it before version 1: no version, a definition_id, no
    verify_tls or secret_headers, and expected statuses already a list."""
    return {
        "name": "smoke",
        "definition_id": definition.pk,
        "target_base_url": definition.target_base_url,
        "load_model": "closed",
        "users": 4,
        "rate_rps": 0.0,
        "think_time_min_s": 0.0,
        "think_time_max_s": 0.0,
        "duration_s": 2,
        "timeout_s": 2.0,
        "max_connections": 100,
        "follow_redirects": False,
        "abort_error_rate_pct": 5.0,
        "steps": [
            {
                "name": "ok",
                "method": "GET",
                "path": "/ok",
                "headers": {"Authorization": TOKEN},
                "body": None,
                "weight": 1,
                "expected_statuses": [200],
                "check_type": "",
                "check_path": "",
                "check_value": "",
            },
        ],  # fmt: skip
        "stages": [],
        "thresholds": {
            "p95_ms": 1000,
            "p99_ms": None,
            "error_rate_pct": 1,
            "min_throughput_rps": None,
        },  # fmt: skip
        "tags": [],
    }


@pytest.fixture
def old_run(definition: LoadTestDefinition) -> LoadTestRun:
    return make_old_run(definition)


def make_old_run(definition: LoadTestDefinition) -> LoadTestRun:
    now = timezone.now()
    histogram = Histogram()
    histogram.record(12_000)
    run = LoadTestRun.objects.create(
        definition=definition, name="smoke", config=old_shape_config(definition),
        status="passed", passed=True, started_at=now - timedelta(seconds=2), finished_at=now,
        requests=1, latency_p95_ms=12.0, latency_histogram=histogram.encode(),
    )  # fmt: skip
    RunInterval.objects.create(
        run=run, index=0, started_at=now, requests=1, latency_p95_ms=12.0,
        latency_histogram=histogram.encode(), errors_by_class={},
    )  # fmt: skip
    return run


def test_a_run_frozen_in_the_old_shape_still_renders_and_exports(
    admin_client: Any, old_run: LoadTestRun
) -> None:
    assert admin_client.get(f"/runs/{old_run.pk}/").status_code == 200
    summary = admin_client.get(f"/runs/{old_run.pk}/summary.json").json()
    assert summary["config"]["version"] == 1
    assert summary["config"]["verify_tls"] is True
    assert summary["config"]["steps"][0]["headers"]["Authorization"] != TOKEN
    assert "definition_id" not in summary["config"]
    assert admin_client.get(f"/runs/{old_run.pk}/intervals.csv").status_code == 200
    assert admin_client.get(f"/runs/{old_run.pk}/latency.hlog").status_code == 200
    admin_page = admin_client.get(f"/admin/loadtests/loadtestrun/{old_run.pk}/change/")
    assert admin_page.status_code == 200 and "old-shape-secret" not in admin_page.content.decode()
    other = make_old_run(old_run.definition)
    compare = admin_client.get(f"/runs/compare/?a={old_run.pk}&b={other.pk}")
    assert compare.status_code == 200


def test_the_engine_runs_an_old_shape_config_as_it_ran_then(old_run: LoadTestRun) -> None:
    config = documents.engine_config_from(old_run.config)
    assert (config.users, config.verify_tls, config.steps[0].headers["Authorization"]) == (
        4, True, TOKEN,
    )  # fmt: skip
    assert documents.config_problems(old_run.config) == {}
