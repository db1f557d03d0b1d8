"""The documented production command serves the app: gunicorn on aicenter.wsgi, several
processes, static files through whitenoise, /healthz for the load balancer."""

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import free_port, stop

pytestmark = pytest.mark.django_db(transaction=True)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, response.read()


def test_gunicorn_serves_pages_static_files_and_healthz():
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AICENTER_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
    }
    command = [
        sys.executable, "-m", "gunicorn", "aicenter.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(server.stdout.read1(20000).decode()) from None
                time.sleep(0.2)
        assert status == 200 and b'"status": "ok"' in body
        status, headers, css = get(f"http://127.0.0.1:{port}/static/css/app.css")
        assert status == 200 and headers["Content-Type"].startswith("text/css") and css
        status, _, page = get(f"http://127.0.0.1:{port}/login/")
        assert status == 200 and b"Log in" in page
    finally:
        stop(server)
