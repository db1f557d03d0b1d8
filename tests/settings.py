"""Test settings: the app's own, with a private data directory per test session.

DATABASE_URL and REDIS_URL come from the environment as in production (.ci/run points them at
PostgreSQL and Redis); unset, the suite runs on SQLite and the embedded Redis."""

import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

# pytest-xdist's processes (gw0, gw1…: `python3 run.py test` runs the suite in two) are
# sessions of their own: each its own data dir (so its own storage and embedded Redis), Redis
# database and sandbox uids; what they start inherits these through the environment.
_PROCESS = os.environ.get("PYTEST_XDIST_WORKER", "")
_OWN_DATA_DIR = (
    "AICENTER_DATA_DIR" not in os.environ
    or os.environ.get("AICENTER_TEST_PROCESS", _PROCESS) != _PROCESS
)
if _OWN_DATA_DIR:  # workers started by the tests inherit it, so only the session makes one
    os.environ["AICENTER_DATA_DIR"] = tempfile.mkdtemp(prefix="aicenter-test-")
    os.environ["AICENTER_TEST_PROCESS"] = _PROCESS
    if _PROCESS:
        _index = int(_PROCESS.removeprefix("gw"))
        if os.environ.get("REDIS_URL"):  # redis://host:port/15 → /14 for gw1, …
            _url = urlsplit(os.environ["REDIS_URL"])
            _db = int(_url.path.strip("/") or 0)
            _db = (_db - _index) % 16  # Redis has databases 0 to 15
            os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db}"))
        _first, _last = os.environ.get("AICENTER_SANDBOX_UIDS", "200000-299999").split("-")
        _span = (int(_last) - int(_first) + 1) // 8
        _first = int(_first) + _index * _span
        os.environ["AICENTER_SANDBOX_UIDS"] = f"{_first}-{_first + _span - 1}"
# The app refuses to start without a SECRET_KEY; the tests (and workers they start) use this.
os.environ.setdefault("SECRET_KEY", "test-" + "k" * 60)
# Playwright's sync API runs an event loop in the test thread; the ORM calls are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from aicenter.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if _OWN_DATA_DIR:
    # This session owns its data dir: at the end, stop its embedded Redis and remove it.
    import atexit
    import shutil

    def _clean_up(data_dir=DATA_DIR):  # noqa: F405
        # runs' disks that workers the tests killed left mounted in it (see sandbox/disks.py)
        from sandbox import disks

        for image, mount in disks.lost_disks():
            disks.reclaim(image, mount)
        if EMBEDDED_REDIS:  # noqa: F405
            from core.embedded_redis import stop

            stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    atexit.register(_clean_up)

# Workers started by the tests run in their own processes: they must find the test database,
# so SQLite's test database is a file, and its name is handed to them.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
# A connection per request, as Django's tests expect: a live server's threads keeping theirs
# would hold the test database when it is dropped at the end.
if "DB_CONN_MAX_AGE" not in os.environ:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
if os.environ.get("AICENTER_TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["AICENTER_TEST_DATABASE_NAME"]  # noqa: F405

# Lost workers and vanished jobs are found in seconds here, not the production half-minute.
PIPELINE_HEARTBEAT_SECONDS = 1
PIPELINE_LOST_AFTER_SECONDS = 5
PIPELINE_SWEEP_SECONDS = 1
SKILL_LEFTOVERS_SWEEP_SECONDS = 1
PIPELINE_KILL_GRACE_SECONDS = 2

# The only folder sandboxes share with the tests (the tmp_path fixture makes folders in it).
SANDBOX_SHARED_DIRS = [DATA_DIR / "shared"]  # noqa: F405
SANDBOX_SHARED_DIRS[0].mkdir(mode=0o777, exist_ok=True)
SANDBOX_SHARED_DIRS[0].chmod(0o777)

# Small limits, so tests can hit them quickly (a worker a test starts may get a smaller one).
PIPELINE_MEMORY_LIMIT_MB = int(os.environ.get("AICENTER_TEST_RUN_MEMORY_MB", 2048))
PIPELINE_FILE_SIZE_LIMIT_MB = 50

# The test session and the workers it starts talk to Redis: the embedded one, when REDIS_URL
# is unset, runs from the moment these settings load.
if EMBEDDED_REDIS:  # noqa: F405
    from core.embedded_redis import ensure_running

    ensure_running(DATA_DIR)  # noqa: F405

# Webhook receivers of the tests listen on loopback (the SSRF tests turn this off), and a
# failed delivery is retried after 1 s, then 2 s, and given up 4 s after its event: the tests
# see a whole backoff in seconds, also on the session's worker, which reads these settings.
WEBHOOKS_ALLOW_LOCAL = True
WEBHOOKS_RETRY_FIRST_SECONDS = 1
WEBHOOKS_RETRY_FOR_SECONDS = 4
# Mail sent by workers the tests start lands in files the tests read (in this process,
# pytest-django swaps in the locmem backend: django.core.mail.outbox).
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = DATA_DIR / "mail"  # noqa: F405
