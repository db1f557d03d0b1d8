"""A trained version's lineage is stored on the version only: pipeline_run keeps the run's number
after the run is deleted (no constraint), so trained_by_run, which kept it before, goes."""

import django.db.models.deletion
from django.db import migrations, models


def keep_deleted_runs_numbers(apps, schema_editor):
    PackageVersion = apps.get_model("packages", "PackageVersion")
    orphans = PackageVersion._base_manager.filter(
        pipeline_run__isnull=True, trained_by_run__isnull=False
    )
    for version in orphans.only("pk", "trained_by_run"):
        PackageVersion._base_manager.filter(pk=version.pk).update(
            pipeline_run_id=version.trained_by_run
        )


class Migration(migrations.Migration):
    dependencies = [
        ("packages", "0003_packageversion_tombstone"),
        ("pipelines", "0005_pipelinerun_timezone"),
    ]

    operations = [
        # first drop the constraint, so a deleted run's number can be stored
        migrations.AlterField(
            model_name="packageversion",
            name="pipeline_run",
            field=models.OneToOneField(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="trained_version",
                to="pipelines.pipelinerun",
            ),
        ),
        migrations.RunPython(keep_deleted_runs_numbers, migrations.RunPython.noop),
        migrations.RemoveField(model_name="packageversion", name="trained_by_run"),
    ]
