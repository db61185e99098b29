"""The definition admin as an engineer authors with it: grouped fields, headers as rows,
errors beside their fields, the duration from the stages."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import pytest
from django.test import override_settings

from loadtests.admin import HeaderRowsWidget
from loadtests.models import LoadTestDefinition, LoadTestStep
from loadtests.secrets import MASK
from tests.loadtests.admin_forms import ADD, admin_form

pytestmark = pytest.mark.django_db

TOKEN = "Bearer tok-authoring-very-secret"


def change_url(definition: LoadTestDefinition) -> str:
    return f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/"


def header_rows(html: str, prefix: str = "steps-0-headers") -> list[tuple[str, str]]:
    names = re.findall(rf'name="{prefix}__name" value="([^"]*)"', html)
    values = re.findall(rf'name="{prefix}__value" value="([^"]*)"', html)
    pairs = zip(names, values, strict=True)
    return [(html_lib.unescape(n), html_lib.unescape(v)) for n, v in pairs]


def with_rows(data: dict[str, Any], rows: list[tuple[str, str]]) -> dict[str, Any]:
    """A post as the browser sends the rows: repeated names, the raw JSON field absent."""
    data = {k: v for k, v in data.items() if k != "steps-0-headers"}
    data["steps-0-headers__name"] = [name for name, _ in rows]
    data["steps-0-headers__value"] = [value for _, value in rows]
    return data


def stages(*durations_and_targets: tuple[int, int]) -> dict[str, str]:
    data = {"stages-TOTAL_FORMS": str(len(durations_and_targets))}
    for index, (duration, target) in enumerate(durations_and_targets):
        data[f"stages-{index}-order"] = str(index)
        data[f"stages-{index}-duration_s"] = str(duration)
        data[f"stages-{index}-target"] = str(target)
    return data


# -- grouping and help -------------------------------------------------------------------------


def test_it_groups_the_definition_form(admin_client: Any) -> None:
    html = admin_client.get(ADD).content.decode()
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", html)
    for title in ("Target", "Load model", "Thresholds", "Schedule", "Alerts"):
        assert title in headings
    assert 'class="module aligned load-model"' in html
    assert "loadtests/admin_definition.js" in html
    # Stages come before steps (the script moves them beside the load model).
    assert html.index('id="stages-group"') < html.index('id="steps-group"')


@override_settings(TARGET_PORT=8765)
def test_it_names_the_target_url_from_the_settings(admin_client: Any) -> None:
    html = admin_client.get(ADD).content.decode()
    assert "http://127.0.0.1:8765" in html
    assert "127.0.0.1:8001" not in html


# -- headers as rows ---------------------------------------------------------------------------


def test_it_renders_headers_as_name_value_rows(admin_client: Any, target_url: str) -> None:
    definition = LoadTestDefinition.objects.create(name="h", target_base_url=target_url)
    LoadTestStep.objects.create(
        definition=definition, name="s", path="/ok", headers={"Accept": "text/plain"}
    )
    html = admin_client.get(change_url(definition)).content.decode()
    # One row per header, then a blank one for a new header.
    assert header_rows(html) == [("Accept", "text/plain"), ("", "")]
    assert '<textarea name="steps-0-headers"' not in html


def test_it_saves_header_rows_as_the_json_object(admin_client: Any, target_url: str) -> None:
    rows = [("Accept", "application/json"), ("X-Trace", "on"), ("", "")]
    response = admin_client.post(ADD, with_rows(admin_form(target_url), rows))
    assert response.status_code == 302, response.content.decode()[:2000]
    step = LoadTestStep.objects.get(definition__name="checkout")
    assert step.headers == {"Accept": "application/json", "X-Trace": "on"}


def test_header_rows_round_trip_keeping_a_secret(admin_client: Any, target_url: str) -> None:
    definition = LoadTestDefinition.objects.create(name="sec", target_base_url=target_url)
    step = LoadTestStep.objects.create(
        definition=definition,
        name="s",
        path="/ok",
        headers={"Authorization": TOKEN, "Accept": "text/plain"},
    )
    html = admin_client.get(change_url(definition)).content.decode()
    shown = header_rows(html)
    # jsonb keeps its own key order; the blank row for a new header comes last.
    assert dict(shown[:-1]) == {"Authorization": MASK, "Accept": "text/plain"}
    assert shown[-1] == ("", "")
    assert TOKEN not in html
    data = admin_form(
        target_url,
        name="sec",
        **{
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(step.pk),
            "steps-0-definition": str(definition.pk),
            "steps-0-name": "s",
            "steps-0-path": "/ok",
            "steps-0-secret_headers": "[]",
        },
    )
    response = admin_client.post(change_url(definition), with_rows(data, shown))
    assert response.status_code == 302, response.content.decode()[:2000]
    step.refresh_from_db()
    assert step.headers == {"Authorization": TOKEN, "Accept": "text/plain"}


def test_the_widget_still_takes_json_from_a_script() -> None:
    from django.http import QueryDict

    widget = HeaderRowsWidget()
    assert widget.value_from_datadict(QueryDict("h=%7B%7D"), {}, "h") == "{}"
    rows = QueryDict("h__name=A&h__value=1&h__name=+&h__value=x")
    assert widget.value_from_datadict(rows, {}, "h") == '{"A": "1"}'


# -- errors beside their fields; the duration from the stages ---------------------------------


def test_the_duration_follows_the_stages(admin_client: Any, target_url: str) -> None:
    data = admin_form(target_url, duration_s="10", **stages((5, 2), (20, 4)))
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    definition = LoadTestDefinition.objects.get(name="checkout")
    assert definition.duration_s == 25  # typed 10; the stages add up to 25
    assert "ignored: the duration is the sum" in admin_client.get(ADD).content.decode()


def test_a_stage_problem_shows_beside_the_stage_field(admin_client: Any, target_url: str) -> None:
    response = admin_client.post(ADD, admin_form(target_url, **stages((5, 0), (5, 0))))
    assert response.status_code == 200
    stage_forms = response.context["inline_admin_formsets"][0].formset.forms
    assert "At least one stage needs a target above 0." in stage_forms[0].errors["target"]
    assert not LoadTestDefinition.objects.exists()


def test_a_stage_sum_over_the_limit_shows_beside_the_duration(
    admin_client: Any, target_url: str
) -> None:
    response = admin_client.post(ADD, admin_form(target_url, **stages((10**7, 2))))
    assert response.status_code == 200
    form = response.context["adminform"].form
    stage_form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert form.errors.get("duration_s") or stage_form.errors.get("duration_s")
    assert not LoadTestDefinition.objects.exists()
