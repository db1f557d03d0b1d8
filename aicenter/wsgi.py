import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
application = get_wsgi_application()

from core.embedded_redis import ensure_embedded_redis  # noqa: E402  (after Django's setup)

ensure_embedded_redis()  # the pages enqueue runs and show workers
