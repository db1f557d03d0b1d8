from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0001_initial"),
    ]

    operations = [
        # Minutes counted before ML Logs existed are not logged afterwards (a month of events
        # at once): the rows there are take True, new ones False.
        migrations.AddField(
            model_name="skillminute",
            name="logged",
            field=models.BooleanField(default=True),
        ),
        migrations.AlterField(
            model_name="skillminute",
            name="logged",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="skillminute",
            index=models.Index(
                condition=models.Q(("logged", False)),
                fields=["minute"],
                name="skill_minute_unlogged",
            ),
        ),
    ]
