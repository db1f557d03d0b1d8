from django.db import migrations, models


def name_existing_tokens(apps, schema_editor):
    """Tokens made before tokens had names are called after their number ("token 3"), so
    they stay usable, listed and revocable."""
    ApiToken = apps.get_model("aicenter", "ApiToken")
    for token in ApiToken.objects.filter(name=""):
        token.name = f"token {token.pk}"
        token.save(update_fields=["name"])


class Migration(migrations.Migration):
    dependencies = [
        ("aicenter", "0005_project_keep_skill_inputs"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="name",
            field=models.CharField(
                default="", help_text="What it is for, e.g. 'CI robot'", max_length=100
            ),
            preserve_default=False,
        ),
        migrations.RunPython(name_existing_tokens, migrations.RunPython.noop),
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="Empty: never expires", null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterModelOptions(
            name="apitoken",
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.AddConstraint(
            model_name="apitoken",
            constraint=models.UniqueConstraint(
                condition=models.Q(("revoked_at__isnull", True)),
                fields=("user", "name"),
                name="one_unrevoked_token_name_per_user",
            ),
        ),
    ]
