"""Every status a page shows as a badge (runs, shards, captures) has a badge style of its own."""

from __future__ import annotations

import re

import pytest
from django.db.models import TextChoices

from loadtests.models import RunStatus, ShardStatus
from profiling.models import CaptureStatus
from tests.conftest import ROOT

CSS = ROOT / "static" / "css" / "offgridperf.css"


def badge_classes() -> set[str]:
    return set(re.findall(r"\.badge\.([a-z-]+)", CSS.read_text()))


@pytest.mark.parametrize("statuses", [RunStatus, ShardStatus, CaptureStatus])
def test_it_styles_a_badge_for_every_status_value(statuses: type[TextChoices]) -> None:
    missing = {status.value for status in statuses} - badge_classes()
    assert not missing, f"no .badge style in {CSS.name} for {sorted(missing)}"
