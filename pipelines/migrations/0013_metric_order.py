"""The metric's rows, now all with their run's keys (0012), require them, and the list's
indexes on them (one for each direction) replace metric_by_value and run_list_by_id; the run's
own index goes too (metric_once, by run and name, finds a run's metrics)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("pipelines", "0012_metric_run_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="metricseries",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="aicenter.project",
            ),
        ),
        migrations.AlterField(
            model_name="metricseries",
            name="run_created_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="metricseries",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="metrics",
                to="pipelines.pipelinerun",
            ),
        ),
        migrations.RemoveIndex(model_name="metricseries", name="metric_by_value"),
        migrations.RemoveIndex(model_name="pipelinerun", name="run_list_by_id"),
        migrations.AddIndex(
            model_name="metricseries",
            index=models.Index(
                fields=["project", "name", "-last", "-run_created_at", "-run"],
                name="metric_high",
            ),
        ),
        migrations.AddIndex(
            model_name="metricseries",
            index=models.Index(
                fields=["project", "name", "last", "-run_created_at", "-run"], name="metric_low"
            ),
        ),
    ]
