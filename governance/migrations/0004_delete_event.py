"""Event moved to the core (aicenter 0007): its table stays, only the state moves."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0003_fewer_indexes'),
        ('aicenter', '0007_event'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name='Event')]),
    ]
