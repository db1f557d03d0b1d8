"""Test settings: the app's own, with a private data directory per test session.

DATABASE_URL and REDIS_URL come from the environment as in production (.ci/run points them at
PostgreSQL and Redis); unset, the suite runs on SQLite and the embedded Redis."""

import os
import tempfile

os.environ.setdefault("AICENTER_DATA_DIR", tempfile.mkdtemp(prefix="aicenter-test-"))
# Playwright's sync API runs an event loop in the test thread; the ORM calls are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from aicenter.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
