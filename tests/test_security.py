"""Production settings: no start without a SECRET_KEY, `check --deploy` clean with the
production variables docs/operating.md documents, a Content-Security-Policy on every page."""

import importlib.util
import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

ROOT = settings.BASE_DIR


def manage(*args, env):
    """`manage.py` in a process of its own, with only `env` from the app's variables."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AICENTER_", "DJANGO_", "AWS_"))
        and key not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL")
    }
    # A REDIS_URL, so that no embedded redis-server is started for a settings check.
    base |= {"DJANGO_SETTINGS_MODULE": "aicenter.settings", "REDIS_URL": "redis://127.0.0.1:1/0"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage("check", env={"AICENTER_DATA_DIR": str(tmp_path)})

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr
    assert "python -c 'import secrets; print(secrets.token_urlsafe(50))'" in result.stderr


@pytest.mark.parametrize("key", ["hunter", "x" * 49, "ab" * 40])
def test_it_refuses_a_short_or_plain_secret_key_in_production(tmp_path, key):
    """The attack: a key someone can guess (a 6-letter word, a short example from a guide)
    lets them sign session cookies, password-reset links and CSRF tokens of their own."""
    result = manage("check", env={"AICENTER_DATA_DIR": str(tmp_path), "SECRET_KEY": key})

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is too weak" in result.stderr, result.stderr
    assert "at least 50 characters" in result.stderr and key not in result.stderr


def test_a_short_secret_key_is_fine_in_debug(tmp_path):
    env = {"AICENTER_DATA_DIR": str(tmp_path), "SECRET_KEY": "x", "DEBUG": "true"}
    assert manage("check", env=env).returncode == 0


def test_the_example_keys_are_long_enough():
    """The Kubernetes example, the CI's check and the benchmarks: no example key that the
    settings would refuse (or that a copy-paste would make everyone's)."""
    example = (ROOT / "deploy/kubernetes/secret.example.yaml").read_text()
    (value,) = re.findall(r'SECRET_KEY: "([^"]*)"', example)
    assert len(value) < 50  # a placeholder the settings refuse: nobody deploys with it
    keys = re.findall(r"SECRET_KEY=([\w.-]+)", (ROOT / ".ci/run").read_text())
    for bench in (ROOT / "bench").glob("*.py"):
        keys += re.findall(r'"SECRET_KEY", "([^"]+)"', bench.read_text())
    assert keys and all(len(key) >= 50 for key in keys), keys


def test_it_starts_without_a_secret_key_in_debug(tmp_path):
    result = manage("check", env={"AICENTER_DATA_DIR": str(tmp_path), "DEBUG": "true"})

    assert result.returncode == 0, result.stderr


def test_the_documented_production_settings_pass_check_deploy(tmp_path):
    operating = (ROOT / "docs" / "operating.md").read_text()
    # the variables the operator's guide's production section documents, with these values
    production = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "aicenter.example.com",
        "AICENTER_BEHIND_TLS_PROXY": "true",
        "AICENTER_HSTS_SECONDS": "31536000",
    }
    for name in production:
        assert f"`{name}" in operating, f"{name} is not in docs/operating.md"

    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={"AICENTER_DATA_DIR": str(tmp_path), **production},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_defaults_serve_plain_http_on_localhost(client, db):
    response = client.get("/login/")

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response
    assert not settings.SESSION_COOKIE_SECURE and not settings.CSRF_COOKIE_SECURE


def _run_py():
    spec = importlib.util.spec_from_file_location("run", ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_makes_a_secret_key_once_and_keeps_it_private(tmp_path, monkeypatch):
    run = _run_py()
    monkeypatch.delenv("SECRET_KEY")
    data_dir = tmp_path / "var"

    key = run.ensure_secret_key(data_dir)

    assert len(key) >= 50
    key_file = data_dir / "secret-key.txt"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run.ensure_secret_key(data_dir) == key  # the next start: the same key

    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert run.ensure_secret_key(data_dir) == "from-the-environment"


# Content-Security-Policy

STRICT = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'self'",
    "object-src 'none'",
}


def directives(response):
    return {part.strip() for part in response["Content-Security-Policy"].split(";")}


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/p/alpha/",
        "/p/alpha/members/",
        "/p/alpha/datasets/",
        "/p/alpha/packages/",
        "/p/alpha/pipelines/",
        "/p/alpha/pipelines/new/",
        "/p/alpha/pipelines/schedules/",
        "/p/nowhere/",  # 404
        "/admin/",
        "/admin/auth/user/",
        "/api/v1/docs",
        "/api/v1/openapi.json",
        "/api/v1/projects",
    ],
)
def test_every_page_has_the_policy(pages_as, alice, path):
    alice.is_staff = alice.is_superuser = True
    alice.save()

    response = pages_as(alice).get(path)

    assert response.status_code in (200, 404), response.status_code
    assert directives(response) == STRICT


def test_the_login_page_and_htmx_partials_have_the_policy(client, pages_as, alice):
    assert directives(client.get("/login/")) == STRICT
    response = pages_as(alice).get("/p/alpha/pipelines/new/", headers={"HX-Request": "true"})
    assert directives(response) == STRICT


def test_only_django_rqs_pages_may_run_inline_code(pages_as, alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()

    policy = directives(pages_as(alice).get("/admin/rq/"))

    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy


def test_templates_carry_no_inline_code():
    """Inline scripts, event handlers and style attributes are refused by the policy."""
    inline = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", re.I)
    found = [
        f"{path.relative_to(ROOT)}: {match[0]}"
        for path in (ROOT / "templates").rglob("*.html")
        for match in inline.finditer(path.read_text())
    ]
    assert found == []
