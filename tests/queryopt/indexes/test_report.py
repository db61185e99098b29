"""services.index_report: what the Indexes page of a target shows."""

from __future__ import annotations

from typing import Any

import psycopg

from queryopt import recommend, services
from queryopt.models import HintKind, IndexHint, QueryTarget
from tests.conftest import closed_port
from tests.queryopt.indexes.conftest import TABLE, window
from tests.queryopt.targets.conftest import PASSWORD


def test_it_reports_recommended_unused_and_duplicate_indexes_and_hints(
    target: QueryTarget, advised_table: str
) -> None:
    window(target, columns=("sensor",))
    recommend.recommend(target)
    IndexHint.objects.create(
        target=None, table=TABLE, columns=["sensor"], kind=HintKind.PREFERRED, note="ops"
    )
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX report_value ON {TABLE} (value)")
        conn.execute(f"CREATE INDEX report_value_site ON {TABLE} (value, site)")
    try:
        services.survey_indexes(target)
        report = services.index_report(target)
    finally:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX report_value, report_value_site")
    assert set(report) == {"recommended", "unused", "duplicate", "hints", "problem", "survey"}
    assert report["problem"] is None
    (recommended,) = [r for r in report["recommended"] if r["table"] == TABLE]
    assert (recommended["columns"], recommended["status"], recommended["validated"]) == (
        ["sensor"],
        "open",
        True,
    )
    assert recommended["preferred_hint"]["note"] == "ops"
    assert len(recommended["shapes"]) == 1
    assert {"report_value", "report_value_site"} <= {row["name"] for row in report["unused"]}
    assert [(row["name"], row["covered_by"]) for row in report["duplicate"]] == [
        ("report_value", "report_value_site")
    ]
    assert [(h["table"], h["columns"], h["kind"], h["global"]) for h in report["hints"]] == [
        (TABLE, ["sensor"], "preferred", True)
    ]


def test_it_names_the_problem_of_a_target_it_cannot_reach_without_its_password(
    db: Any,
) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres"
    target = QueryTarget.objects.create(name="down", dsn=dsn)
    services.survey_indexes(target)
    report = services.index_report(target)
    assert report["problem"].startswith("cannot connect to")
    assert PASSWORD not in report["problem"]
    assert (report["unused"], report["duplicate"], report["recommended"]) == ([], [], [])
