from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    """Achieved throughput has one name everywhere: throughput_rps (the run's, a second's and
    a shard's). Renames only, so no data is lost."""

    dependencies = [
        ("loadtests", "0009_definition_written_values"),
    ]

    operations = [
        migrations.RenameField(
            model_name="runinterval", old_name="achieved_rps", new_name="throughput_rps"
        ),
        migrations.RenameField(
            model_name="runshard", old_name="achieved_rps", new_name="throughput_rps"
        ),
    ]
