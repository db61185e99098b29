"""The Cache page's permission moves from emissions.ActivityBatch to the tool's own model.

`emissions.invalidate_cache` becomes `offgridperf.invalidate_cache`: every user and group that
held the old one gets the new one, then the old one is deleted (Django never deletes a
permission that a model stops declaring). Superusers hold every permission anyway. Reversible.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CODENAME = "invalidate_cache"
NAME = "Can invalidate cache strategies and reset cache metrics"
OLD = ("emissions", "activitybatch")
NEW = ("offgridperf", "cachelayer")


def move(apps: Any, source: tuple[str, str], target: tuple[str, str]) -> None:
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    old = Permission.objects.filter(
        codename=CODENAME, content_type__app_label=source[0], content_type__model=source[1]
    ).first()
    if old is None:  # a fresh database: post_migrate creates the new one
        return
    content_type, _ = ContentType.objects.get_or_create(app_label=target[0], model=target[1])
    new, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )
    new.user_set.add(*old.user_set.all())
    new.group_set.add(*old.group_set.all())
    old.delete()


def forwards(apps: Any, schema_editor: Any) -> None:
    move(apps, OLD, NEW)


def backwards(apps: Any, schema_editor: Any) -> None:
    move(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("emissions", "0002_activity_date_brin"),
        ("offgridperf", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="activitybatch",
            options={"ordering": ["-created_at", "-id"], "verbose_name_plural": "activity batches"},
        ),
        migrations.RunPython(forwards, backwards),
    ]
