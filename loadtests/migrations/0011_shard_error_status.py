# A shard that ended in an error is `error`, as a run that did: `failed` is a run's verdict.

from django.db import migrations, models


def failed_to_error(apps, schema_editor):
    apps.get_model("loadtests", "RunShard").objects.filter(status="failed").update(status="error")


def error_to_failed(apps, schema_editor):
    apps.get_model("loadtests", "RunShard").objects.filter(status="error").update(status="failed")


class Migration(migrations.Migration):
    dependencies = [
        ("loadtests", "0010_throughput_rps"),
    ]

    operations = [
        migrations.AlterField(
            model_name="runshard",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("ready", "Ready"),
                    ("running", "Running"),
                    ("done", "Done"),
                    ("error", "Error"),
                    ("interrupted", "Interrupted"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.RunPython(failed_to_error, error_to_failed),
    ]
