"""A step saved with no expected statuses accepts 200-399 from the form to the finished run."""

from __future__ import annotations

import pytest

from loadtests import documents, lifecycle, services
from loadtests.engine.config import DEFAULT_SUCCESS_TEXT
from loadtests.models import LoadTestDefinition, LoadTestStep


@pytest.fixture
def open_ended(db: object, target_url: str) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="open-ended statuses", target_base_url=target_url, load_model="closed", users=2,
        duration_s=1, timeout_s=2, threshold_error_rate_pct=1,
    )  # fmt: skip
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok", expected_statuses="")
    LoadTestStep.objects.create(
        definition=definition, name="moved", path="/status/302", expected_statuses=""
    )
    return definition


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["requests", "flow"])
def test_a_run_of_steps_with_empty_expected_statuses_has_no_status_errors(
    open_ended: LoadTestDefinition, mode: str
) -> None:
    LoadTestDefinition.objects.filter(pk=open_ended.pk).update(mode=mode)
    open_ended.refresh_from_db()
    done = lifecycle.execute(services.create_run(open_ended).pk)
    assert done is not None
    assert done.requests > 0
    assert done.errors == 0, done.errors_by_class
    assert done.status == "passed", done.status_reason


@pytest.mark.django_db
def test_the_document_keeps_an_empty_list_and_the_engine_reads_it_as_the_default(
    open_ended: LoadTestDefinition,
) -> None:
    document = documents.document_of(open_ended)
    assert [step["expected_statuses"] for step in document["steps"]] == [[], []]
    config = documents.engine_config_from(document)
    assert [step.expected_statuses for step in config.steps] == [(), ()]


def test_the_form_help_prints_the_engines_default() -> None:
    help_text = str(LoadTestStep._meta.get_field("expected_statuses").help_text)
    assert f"empty: any of {DEFAULT_SUCCESS_TEXT}" in help_text


@pytest.mark.django_db
def test_the_definition_page_names_the_default_for_empty_expected_statuses(
    open_ended: LoadTestDefinition, viewer_client: object
) -> None:
    page = viewer_client.get(f"/definitions/{open_ended.pk}/").content.decode()  # type: ignore[attr-defined]
    assert page.count(f"<td>{DEFAULT_SUCCESS_TEXT}</td>") == 2
