"""A BRIN index on emissions_activity.date, on PostgreSQL only.

Batches arrive period by period, so the table's physical order follows the date closely:
a BRIN index answers date-range filters for a few kilobytes and almost no ingest cost,
where a B-tree index would slow every COPY down by a third.
"""

from django.db import migrations

INDEX = "activity_date_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON emissions_activity USING brin (date)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("emissions", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
