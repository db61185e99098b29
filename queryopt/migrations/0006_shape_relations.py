"""The relations to QueryShape are called `shape` (`shapes` for a recommendation's), so that
`fingerprint` names only the value on QueryShape.

The foreign keys keep their column, fingerprint_id: renaming it would make PostgreSQL drop and
re-add each foreign key constraint, which checks every row of the largest tables
(querystatwindow, statementdelta, querystatrollup). With db_column nothing but the migration
state changes; the indexes and the N+1 unique constraint are on the same columns under the same
names, so they change in the state only. The many-to-many table is small and is renamed.
"""

import django.db.models.deletion
from django.db import migrations, models

RELATED_NAMES = {
    "nplusone": "n_plus_ones",
    "queryplan": "plans",
    "querystatrollup": "stat_rollups",
    "querystatwindow": "stat_windows",
    "slowquery": "slow_queries",
    "statementdelta": "deltas",
}


def _keep_column_and_rename(model_name: str, related_name: str) -> list:
    # The no-op AlterField pins the column first, so the RenameField after it renames nothing.
    return [
        migrations.AlterField(
            model_name=model_name,
            name="fingerprint",
            field=models.ForeignKey(
                db_column="fingerprint_id",
                on_delete=django.db.models.deletion.CASCADE,
                related_name=related_name,
                to="queryopt.queryshape",
            ),
        ),
        migrations.RenameField(model_name=model_name, old_name="fingerprint", new_name="shape"),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("queryopt", "0005_rename_queryfingerprint_queryshape"),
    ]

    operations = [
        migrations.RenameField(
            model_name="indexrecommendation", old_name="fingerprints", new_name="shapes"
        ),
        *[
            operation
            for model_name, related_name in RELATED_NAMES.items()
            for operation in _keep_column_and_rename(model_name, related_name)
        ],
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="nplusone", name="queryopt_n_plus_one_unique"
                ),
                migrations.AddConstraint(
                    model_name="nplusone",
                    constraint=models.UniqueConstraint(
                        fields=("shape", "origin"), name="queryopt_n_plus_one_unique"
                    ),
                ),
                migrations.RemoveIndex(
                    model_name="querystatrollup", name="queryopt_qu_grain_5ed789_idx"
                ),
                migrations.AddIndex(
                    model_name="querystatrollup",
                    index=models.Index(
                        fields=["grain", "shape", "day"], name="queryopt_qu_grain_5ed789_idx"
                    ),
                ),
                migrations.RemoveIndex(
                    model_name="querystatwindow", name="queryopt_qu_fingerp_eaf379_idx"
                ),
                migrations.AddIndex(
                    model_name="querystatwindow",
                    index=models.Index(
                        fields=["shape", "window_start"], name="queryopt_qu_fingerp_eaf379_idx"
                    ),
                ),
            ]
        ),
        migrations.AlterField(
            model_name="queryshape",
            name="target",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="shapes",
                to="queryopt.querytarget",
            ),
        ),
        migrations.AlterField(
            model_name="queryplan",
            name="source",
            field=models.CharField(
                choices=[
                    ("on_demand", "On demand"),
                    ("slow", "New slow query shape"),
                    ("advisor", "Advisor"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="querytarget",
            name="own_database",
            field=models.BooleanField(
                default=False,
                help_text="This is the app's own database: the statistics its capture middleware "
                "takes of the app's queries are filed under this target's query shapes.",
            ),
        ),
    ]
