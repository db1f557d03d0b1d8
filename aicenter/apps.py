from django.apps import AppConfig
from django.conf import settings


class AicenterConfig(AppConfig):
    name = "aicenter"
    verbose_name = "AI Center"

    def ready(self):
        if settings.EMBEDDED_REDIS:
            from aicenter.embedded_redis import ensure_running

            ensure_running(settings.DATA_DIR)
