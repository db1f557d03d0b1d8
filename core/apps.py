from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The ground floor: projects and roles, storage, manifests, ML Logs writing. Its label
    stays "aicenter", the app these models were born in, so their tables, migrations and
    permissions keep their names."""

    name = "core"
    label = "aicenter"
    verbose_name = "AI Center"

    def ready(self):
        # RQ's default serializer is the platform's in every process, before anything of RQ
        # reads Redis (core/queue.py says why)
        from core import housekeeping, queue, reclaim  # noqa: F401

        housekeeping.register("storage_reclaim", reclaim.reclaim_storage_hourly)
