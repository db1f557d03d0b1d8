"""A queued run's lost jobs are counted apart from its enqueues: a loss an outage may explain
(Redis restarted, the database unreachable) doesn't count toward the limit."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("pipelines", "0013_metric_order"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipelinerun",
            name="lost_count",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
