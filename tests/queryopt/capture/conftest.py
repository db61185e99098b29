"""App-side capture: every test starts with an empty window and cold look-up caches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Sum

from emissions.models import ActivityBatch
from queryopt import capture
from queryopt.models import QueryStatWindow


@pytest.fixture(autouse=True)
def fresh_capture() -> Iterator[None]:
    capture.reset()
    yield
    capture.reset()


@pytest.fixture
def api(client: Any, settings: Any, db: Any) -> Any:
    """The test client on the target's URL conf (no login, as the target process serves it)."""
    settings.ROOT_URLCONF = "emissions.api_urls"
    return client


@pytest.fixture
def batches(db: Any) -> list[ActivityBatch]:
    return [
        ActivityBatch.objects.create(reference=f"cap-{n}", organisation="Acme", period="2024")
        for n in range(6)
    ]


def calls(origin: str, text_contains: str) -> int:
    """Calls filed under `origin` for the shapes whose text contains `text_contains`."""
    windows = QueryStatWindow.objects.filter(
        origin=origin, shape__query_text__contains=text_contains
    )
    return windows.aggregate(total=Sum("calls"))["total"] or 0
