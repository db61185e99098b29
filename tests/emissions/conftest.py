from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from offgridperf import cache
from tests.conftest import needs_services

if TYPE_CHECKING:
    from emissions.models import EmissionFactor

# Hand-checkable rows: (scope, category, activity_type, quantity, unit, date, site).
KNOWN_ROWS = [
    (2, "purchased electricity", "electricity_grid", "1000", "kWh", "2024-01-15", "site-a"),
    (1, "mobile combustion", "diesel", "100", "litre", "2023-12-31", "site-a"),
    (1, "mobile combustion", "diesel", "100", "litre", "2024-01-01", "site-b"),
    (3, "business travel", "air_short_haul", "2000", "passenger_km", "2024-02-10", "site-b"),
    (3, "business travel", "teleport", "5", "trip", "2024-02-11", "site-b"),  # no factor
]
HEADER = "scope,category,activity_type,quantity,unit,date,site"


def csv_text(rows: list[tuple[Any, ...]], header: str = HEADER) -> str:
    return "\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n"


def many_rows(count: int, site: str = "site-a") -> list[tuple[Any, ...]]:
    return [
        (2, "purchased electricity", "electricity_grid", f"{n % 50 + 1}", "kWh", "2024-03-05", site)
        for n in range(count)
    ]


@pytest.fixture(autouse=True)
def clean_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    if not needs_services(request.node):  # tests/emissions/pure: no Redis, no database
        yield
        return
    cache.clear_all()
    yield
    cache.reset_process_state()


@pytest.fixture
def api(client: Any, settings: Any, db: Any) -> Any:
    """The test client on the target's URL conf (no login, as the target process serves it)."""
    settings.ROOT_URLCONF = "emissions.api_urls"
    return client


@pytest.fixture
def auth(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.EMISSIONS_API_TOKEN}"}


@pytest.fixture
def factors(db: Any) -> list[EmissionFactor]:
    from emissions.models import EmissionFactor

    rows = [
        ("electricity_grid", "kWh", "0.2", date(2023, 1, 1), None),
        ("diesel", "litre", "2.5", date(2023, 1, 1), date(2023, 12, 31)),
        ("diesel", "litre", "2.6", date(2024, 1, 1), None),
        ("air_short_haul", "passenger_km", "0.15", date(2023, 1, 1), None),
    ]
    return [
        EmissionFactor.objects.create(
            activity_type=activity_type,
            unit=unit,
            kg_co2e_per_unit=Decimal(value),
            valid_from=start,
            valid_to=end,
            source="test",
        )
        for activity_type, unit, value, start, end in rows
    ]


def upload_csv(api: Any, auth: dict[str, str], text: str, **params: str) -> Any:
    query = "&".join(
        f"{k}={v}" for k, v in {"organisation": "Acme", "period": "2024", **params}.items()
    )
    return api.post(f"/api/batches/?{query}", data=text, content_type="text/csv", headers=auth)
