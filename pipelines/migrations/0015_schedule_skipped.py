"""A recurring pipeline keeps how many missed firings its last catch-up skipped, and when."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("pipelines", "0014_run_lost_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="schedule",
            name="skipped_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="schedule",
            name="skipped_count",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
