"""The embedded default (`make run` with no environment): ingest and calculation on SQLite.

The rest of the suite runs on PostgreSQL, where ingest takes the COPY path; this runs the
multi-row INSERT path in a subprocess whose settings point at a SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.emissions.conftest import KNOWN_ROWS, csv_text, many_rows

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from emissions import services
from emissions.models import Activity, ActivityBatch
from emissions.rows import CsvUpload

call_command("migrate", verbosity=0)
call_command("seed_emissions", "--activities", "3000", stdout=sys.stderr)
text = sys.stdin.read()
batch = services.create_batch(services.BatchInfo("Acme", "2024-03", "sqlite-1"), CsvUpload(text))
services.calculate(batch.pk)
batch.refresh_from_db()
again = services.replace_batch(batch, CsvUpload(text))
print(json.dumps({
    "vendor": connection.vendor,
    "seeded": Activity.objects.exclude(batch=batch).count(),
    "status": batch.status,
    "row_count": batch.row_count,
    "error_count": batch.error_count,
    "errors": batch.error_report,
    "stored": batch.activities.count(),
    "total": str(batch.total_kg_co2e),
    "after_replace": again.activities.count(),
    "replace_cleared": again.total_kg_co2e is None,
    "status_after_replace": again.status,
}))
"""


def test_ingest_and_calculation_work_on_the_embedded_sqlite_database(tmp_path: Path) -> None:
    rows = [*KNOWN_ROWS[:4], *many_rows(1500)]
    rows[2] = (7, *rows[2][1:])  # line 4: bad scope
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        DJANGO_SETTINGS_MODULE="offgridperf.settings",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=csv_text(rows),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["vendor"] == "sqlite"
    assert result["seeded"] == 3000
    assert (result["row_count"], result["error_count"], result["stored"]) == (1503, 1, 1503)
    assert [(e["line"], e["reason"]) for e in result["errors"]] == [(4, "scope: must be 1, 2 or 3")]
    assert result["status"] == "done"
    assert float(result["total"]) > 0
    assert result["after_replace"] == 1503 and result["replace_cleared"] is True
    assert result["status_after_replace"] == "uploaded"
