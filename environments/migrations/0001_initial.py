"""Environment builds move from the pipelines app to the environments kit that builds them:
their tables keep their names, only Django's idea of which app holds them changes (no SQL)."""

from django.db import migrations, models


LABEL = 'environments'
MODELS = ['environmentbuild']


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
        ('packages', '0004_lineage_on_the_version'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
        migrations.CreateModel(
            name='EnvironmentBuild',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=64, unique=True)),
                ('python_version', models.CharField(max_length=20)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('building', 'Building'), ('ready', 'Ready'), ('failed', 'Failed')], default='pending', max_length=10)),
                ('detail', models.TextField(blank=True)),
                ('output', models.TextField(blank=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('versions', models.ManyToManyField(blank=True, related_name='environment_builds', to='packages.packageversion')),
            ],
            options={
                'db_table': 'pipelines_environmentbuild',
            },
        ),
        ]),
        migrations.RunPython(content_types_here, content_types_back),
    ]
