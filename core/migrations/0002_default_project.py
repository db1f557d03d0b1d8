from django.db import migrations


def create_default(apps, schema_editor):
    Project = apps.get_model("aicenter", "Project")
    Project.objects.get_or_create(
        slug="default", defaults={"name": "default", "description": "The default project."}
    )


class Migration(migrations.Migration):
    dependencies = [("aicenter", "0001_initial")]
    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
