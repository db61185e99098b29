"""A run list's "invalid" badge says why: the run's own reason in its title, and a legend under
the list saying what an invalid run is (the load generator, not the target, was the limit)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.models import LoadTestDefinition
from tests.loadtests.test_dashboard import make_run

pytestmark = pytest.mark.django_db

REASON = "the generator's CPU averaged 99% and its event loop lagged 480 ms (p99)"


@pytest.mark.parametrize("page", ["/", "/definitions/{pk}/"])
def test_an_invalid_passing_run_is_explained_where_runs_are_listed(
    admin_client: Any, definition: LoadTestDefinition, page: str
) -> None:
    make_run(definition, valid=False, health={"valid": False, "invalid_reason": REASON})
    make_run(definition)
    make_run(definition, valid=False, health={"valid": False, "invalid_reason": REASON})
    body = admin_client.get(page.format(pk=definition.pk)).content.decode()
    assert body.count('data-field="valid"') == 2 and body.count('id="invalid-legend"') == 1
    badge = body.split('data-field="valid"', 1)[1].split("</span>", 1)[0]
    assert "invalid" in badge
    assert f"Not valid: {REASON}".replace("'", "&#x27;") in badge
    legend = body.split('id="invalid-legend"', 1)[1].split("</p>", 1)[0]
    assert "the load generator could not keep up" in legend
    assert "pass or fail" in legend


def test_a_list_of_valid_runs_has_no_invalid_badge_nor_legend(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    make_run(definition)
    body = admin_client.get("/").content.decode()
    assert 'data-field="valid"' not in body and 'id="invalid-legend"' not in body
