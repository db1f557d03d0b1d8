"""The runs list sorted by a metric reads its runs from the metric's rows alone: each row gets
its run's project and created_at (copied from the run), and one index in the list's order
replaces metric_by_value and the runs' run_list_by_id, which served the join it no longer
needs.

The copy is its own migration: on PostgreSQL, rows updated in a transaction with a deferred
foreign key keep the table from being altered until it commits (0013 makes the fields
required and builds the index)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_run_keys(apps, schema_editor):
    MetricSeries = apps.get_model("pipelines", "MetricSeries")
    PipelineRun = apps.get_model("pipelines", "PipelineRun")
    run = PipelineRun.objects.filter(pk=OuterRef("run_id"))
    MetricSeries.objects.update(
        project_id=Subquery(run.values("project_id")[:1]),
        run_created_at=Subquery(run.values("created_at")[:1]),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("aicenter", "0006_api_token_names_expiry_revoke"),
        ("pipelines", "0011_fewer_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="metricseries",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="aicenter.project",
            ),
        ),
        migrations.AddField(
            model_name="metricseries",
            name="run_created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(copy_run_keys, migrations.RunPython.noop),
    ]
