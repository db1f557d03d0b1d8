"""The ML Logs' Event model moves to the core, which writes the events: its table stays
governance_event, so only Django's idea of which app holds it changes (no SQL). Its content
type follows, so permissions given on it stay given."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=target, model="event").exists():
        ContentType.objects.filter(app_label=source, model="event").update(app_label=target)


def content_type_to_core(apps, schema_editor):
    _move_content_type(apps, "governance", "aicenter")


def content_type_to_governance(apps, schema_editor):
    _move_content_type(apps, "aicenter", "governance")


class Migration(migrations.Migration):

    dependencies = [
        ('aicenter', '0006_api_token_names_expiry_revoke'),
        ('governance', '0003_fewer_indexes'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('time', models.DateTimeField(default=django.utils.timezone.now)),
                ('category', models.CharField(max_length=20)),
                ('action', models.CharField(max_length=30)),
                ('actor_name', models.CharField(default='system', max_length=150)),
                ('object_type', models.CharField(max_length=20)),
                ('object_key', models.CharField(blank=True, max_length=200)),
                ('object_name', models.CharField(blank=True, max_length=300)),
                ('url', models.CharField(blank=True, max_length=500)),
                ('message', models.TextField(blank=True)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='aicenter.project')),
            ],
            options={
                'db_table': 'governance_event',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['project', '-id'], name='event_project_newest'), models.Index(fields=['project', 'category', '-id'], name='event_category_newest'), models.Index(fields=['project', 'actor_name', '-id'], name='event_actor_newest'), models.Index(fields=['project', 'object_type', 'object_key', '-id'], name='event_object_newest'), models.Index(fields=['project', 'object_key', '-id'], name='event_key_newest'), models.Index(fields=['project', 'time'], name='event_project_time'), models.Index(fields=['time'], name='event_time')],
            },
        ),]),
        migrations.RunPython(content_type_to_core, content_type_to_governance),
    ]
