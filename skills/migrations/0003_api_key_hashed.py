"""Skill API keys kept as their SHA-256 and first characters, no longer in clear: every key in
use keeps working (its hash is made from it here). Going back can't bring the keys back: each
skill then gets a new one (shown nowhere: rotate it)."""

import hashlib
import secrets

from django.db import migrations, models

PREFIX_CHARS = 8


def hash_keys(apps, schema_editor):
    Skill = apps.get_model("skills", "Skill")
    for skill in Skill.objects.only("pk", "api_key").iterator():
        Skill.objects.filter(pk=skill.pk).update(
            api_key_digest=hashlib.sha256(skill.api_key.encode()).hexdigest(),
            api_key_prefix=skill.api_key[:PREFIX_CHARS],
            api_key=None,
        )


def new_keys(apps, schema_editor):
    Skill = apps.get_model("skills", "Skill")
    for pk in Skill.objects.values_list("pk", flat=True):
        Skill.objects.filter(pk=pk).update(api_key="sk-" + secrets.token_urlsafe(32))


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0002_minute_logged"),
    ]

    operations = [
        migrations.AddField(
            model_name="skill",
            name="api_key_digest",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="skill",
            name="api_key_prefix",
            field=models.CharField(default="", max_length=PREFIX_CHARS),
            preserve_default=False,
        ),
        # no longer unique nor required, so the keys can be emptied (and, going back, made anew)
        migrations.AlterField(
            model_name="skill",
            name="api_key",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(hash_keys, new_keys, elidable=False),
        migrations.AlterField(
            model_name="skill",
            name="api_key_digest",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.RemoveField(
            model_name="skill",
            name="api_key",
        ),
    ]
