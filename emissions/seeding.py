"""A realistic, reproducible data set for the emissions workload (used by seed_emissions)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction

from emissions import services
from emissions.models import ActivityBatch, BatchStatus, EmissionFactor
from emissions.rows import ActivityRow

SEED_PREFIX = "seed-"
ROWS_PER_BATCH = 25_000
SITE_COUNT = 60
ORGANISATIONS = ("OffGridFlow Demo Ltd", "Northwind Energy", "Fjord Foods AS")
FACTOR_SOURCE = "Illustrative, DEFRA-like conversion factors"
NEW_FACTORS_FROM = date(2024, 1, 1)
OLD_FACTORS_FROM = date(2023, 1, 1)


@dataclass(frozen=True)
class ActivityKind:
    activity_type: str
    unit: str
    scope: int
    category: str
    kg_per_unit_2023: str
    kg_per_unit_2024: str
    typical_quantity: float
    weight: int


KINDS = (
    ActivityKind("natural_gas", "kWh", 1, "stationary combustion", "0.18293", "0.18290", 4000, 12),
    ActivityKind("diesel", "litre", 1, "mobile combustion", "2.51233", "2.51279", 300, 10),
    ActivityKind("petrol", "litre", 1, "mobile combustion", "2.09722", "2.08440", 150, 6),
    ActivityKind("lpg", "litre", 1, "stationary combustion", "1.55713", "1.55537", 200, 3),
    ActivityKind("refrigerant_r410a", "kg", 1, "fugitive emissions", "2088", "2088", 2, 1),
    ActivityKind(
        "electricity_grid", "kWh", 2, "purchased electricity", "0.20707", "0.20705", 9000, 16
    ),
    ActivityKind("district_heating", "kWh", 2, "purchased heat", "0.17067", "0.17073", 5000, 4),
    ActivityKind(
        "air_short_haul", "passenger_km", 3, "business travel", "0.15102", "0.15298", 800, 6
    ),
    ActivityKind(
        "air_long_haul", "passenger_km", 3, "business travel", "0.14787", "0.14981", 6000, 3
    ),
    ActivityKind("rail", "passenger_km", 3, "business travel", "0.03549", "0.03546", 250, 6),
    ActivityKind("hotel_night", "night", 3, "business travel", "10.4", "10.3", 3, 4),
    ActivityKind("car_commute", "km", 3, "employee commuting", "0.17048", "0.16844", 400, 8),
    ActivityKind("waste_landfill", "tonne", 3, "waste", "467.01", "497.04", 2, 3),
    ActivityKind("waste_recycled", "tonne", 3, "waste", "21.29", "21.28", 3, 3),
    ActivityKind("water_supply", "m3", 3, "water", "0.14900", "0.15300", 120, 4),
    ActivityKind("steel_purchased", "tonne", 3, "purchased goods", "1850", "1850", 5, 2),
    ActivityKind("paper_purchased", "tonne", 3, "purchased goods", "919.4", "919.4", 1, 2),
    # No factor on purpose: a few rows stay uncalculated, as in real uploads.
    ActivityKind("refrigerant_unlisted", "kg", 1, "fugitive emissions", "", "", 1, 0),
)


def seed_factors() -> int:
    """Two validity periods per activity type (2023, then 2024 onwards). Idempotent."""
    created = 0
    for kind in KINDS:
        if not kind.kg_per_unit_2023:
            continue
        for valid_from, valid_to, value in (
            (OLD_FACTORS_FROM, NEW_FACTORS_FROM - timedelta(days=1), kind.kg_per_unit_2023),
            (NEW_FACTORS_FROM, None, kind.kg_per_unit_2024),
        ):
            _, was_created = EmissionFactor.objects.get_or_create(
                activity_type=kind.activity_type,
                unit=kind.unit,
                valid_from=valid_from,
                defaults={
                    "valid_to": valid_to,
                    "kg_co2e_per_unit": Decimal(value),
                    "source": FACTOR_SOURCE,
                },
            )
            created += was_created
    return created


def batch_months(count: int, last: date = date(2024, 12, 1)) -> list[date]:
    """`count` consecutive month starts ending with `last`, oldest first."""
    months = []
    year, month = last.year, last.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def generate_rows(rng: random.Random, month: date, count: int) -> Iterator[ActivityRow]:
    kinds = list(KINDS)
    weights = [kind.weight or 0.05 for kind in kinds]
    days = (date(month.year + month.month // 12, month.month % 12 + 1, 1) - month).days
    sites = [f"site-{n:03d}" for n in range(1, SITE_COUNT + 1)]
    # A few big sites and a long tail (Zipf-like), as a real estate of sites looks.
    site_picks = rng.choices(sites, weights=[1 / n**0.7 for n in range(1, SITE_COUNT + 1)], k=count)
    picks = rng.choices(kinds, weights=weights, k=count)
    # Line 1 would be the CSV header.
    for line, (kind, site) in enumerate(zip(picks, site_picks, strict=True), start=2):
        quantity = Decimal(f"{kind.typical_quantity * rng.lognormvariate(0, 0.6):.4f}")
        yield ActivityRow(
            line=line,
            scope=kind.scope,
            category=kind.category,
            activity_type=kind.activity_type,
            quantity=quantity,
            unit=kind.unit,
            date=month + timedelta(days=rng.randrange(days)),
            site=site,
        )


def seed(activities: int, *, seed_value: int = 42) -> list[ActivityBatch]:
    """Replace the seeded batches with `activities` rows over batches of ~25,000, calculated."""
    rng = random.Random(seed_value)
    seed_factors()
    ActivityBatch.objects.filter(reference__startswith=SEED_PREFIX).delete()
    batch_count = max(1, math.ceil(activities / ROWS_PER_BATCH))
    batches = []
    for number, month in enumerate(batch_months(batch_count)):
        size = activities // batch_count + (1 if number < activities % batch_count else 0)
        with transaction.atomic():
            batch = ActivityBatch.objects.create(
                reference=f"{SEED_PREFIX}{month:%Y-%m}",
                organisation=ORGANISATIONS[number % len(ORGANISATIONS)],
                period=f"{month:%Y-%m}",
                status=BatchStatus.UPLOADED,
            )
            batch.row_count = services.insert_activities(
                batch.pk, list(generate_rows(rng, month, size))
            )
            batch.save(update_fields=["row_count"])
        services.calculate(batch.pk)
        batches.append(batch)
    return batches
