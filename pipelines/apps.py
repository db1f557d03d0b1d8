from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save


def _new_version(sender, instance, created, **kwargs):
    """Environments are built ahead when a version is uploaded or trained, so the first run
    does not pay for it."""
    from django.conf import settings

    if created and instance.package.training_enabled and settings.PREPARE_ENVIRONMENTS:
        from pipelines.environments import prepare_environment_later

        transaction.on_commit(lambda: prepare_environment_later(instance))


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        post_save.connect(
            _new_version, sender="packages.PackageVersion", dispatch_uid="prepare-environment"
        )
