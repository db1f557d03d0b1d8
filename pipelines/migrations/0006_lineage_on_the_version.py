"""A run's new version is found through PackageVersion.pipeline_run (reverse name
trained_version): the run no longer stores it a second time."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0005_pipelinerun_timezone"),
        ("packages", "0004_lineage_on_the_version"),
    ]

    operations = [
        migrations.RemoveField(model_name="pipelinerun", name="output_version"),
    ]
