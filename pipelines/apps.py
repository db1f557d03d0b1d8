from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        # RQ's default serializer is the platform's in every process, before anything of RQ
        # reads Redis (core/queue.py says why)
        from core import queue  # noqa: F401
