"""QueryFingerprint becomes QueryShape: the row is one query shape, `fingerprint` its value.

Django renames the content type with the model; the permissions on it keep their old codenames
unless renamed here, and a group or user granted view_queryfingerprint would lose the Queries
area when Django created view_queryshape beside it.
"""

from django.db import migrations

ACTIONS = ("add", "change", "delete", "view")


def _rename_permissions(apps, old: str, new: str, new_name: str) -> None:
    Permission = apps.get_model("auth", "Permission")
    for action in ACTIONS:
        found = Permission.objects.filter(
            content_type__app_label="queryopt", codename=f"{action}_{old}"
        )
        if Permission.objects.filter(
            content_type__app_label="queryopt", codename=f"{action}_{new}"
        ).exists():
            continue  # already there (created by hand): keep the grants on the old one
        found.update(codename=f"{action}_{new}", name=f"Can {action} {new_name}")


def forwards(apps, schema_editor) -> None:
    _rename_permissions(apps, "queryfingerprint", "queryshape", "query shape")


def backwards(apps, schema_editor) -> None:
    _rename_permissions(apps, "queryshape", "queryfingerprint", "query fingerprint")


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("queryopt", "0004_stat_rollups_and_explain_requests"),
    ]

    operations = [
        migrations.RenameModel(old_name="QueryFingerprint", new_name="QueryShape"),
        migrations.RunPython(forwards, backwards),
    ]
