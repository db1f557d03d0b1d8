"""The sandbox uid leases move from the pipelines app to the sandbox kit that leases them: their
tables keep their names, only Django's idea of which app holds them changes (no SQL)."""

from django.db import migrations, models


LABEL = 'sandbox'
MODELS = ['sandboxuid', 'sandboxuidcounter']


def _move_content_types(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def content_types_here(apps, schema_editor):
    _move_content_types(apps, "pipelines", LABEL)


def content_types_back(apps, schema_editor):
    _move_content_types(apps, LABEL, "pipelines")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('pipelines', '0016_sandbox_uids'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
        migrations.CreateModel(
            name='SandboxUidCounter',
            fields=[
                ('kind', models.CharField(max_length=16, primary_key=True, serialize=False)),
                ('position', models.BigIntegerField()),
            ],
            options={
                'db_table': 'pipelines_sandboxuidcounter',
            },
        ),
        migrations.CreateModel(
            name='SandboxUid',
            fields=[
                ('uid', models.PositiveBigIntegerField(primary_key=True, serialize=False)),
                ('kind', models.CharField(max_length=16)),
                ('held', models.BooleanField()),
                ('host', models.CharField(max_length=255)),
                ('pid', models.PositiveIntegerField()),
                ('holder', models.CharField(max_length=255)),
                ('changed_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'pipelines_sandboxuid',
                'indexes': [models.Index(condition=models.Q(('held', True)), fields=['host'], name='uid_held')],
            },
        ),
        ]),
        migrations.RunPython(content_types_here, content_types_back),
    ]
