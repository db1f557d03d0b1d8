"""EnvironmentBuild, SandboxUid and SandboxUidCounter moved to the environments and sandbox
kits (their 0001): the tables stay, only the state moves."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0016_sandbox_uids"),
        ("sandbox", "0001_initial"),
        ("environments", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="environmentbuild", name="versions"),
                migrations.DeleteModel(name="SandboxUid"),
                migrations.DeleteModel(name="SandboxUidCounter"),
                migrations.DeleteModel(name="EnvironmentBuild"),
            ]
        )
    ]
