"""Reading the settings' environment variables: booleans and integers, and the two values that
are refused at start-up rather than run with (a weak secret key, a sandbox uid range too small).
Imported by aicenter/settings.py only."""

import os

from django.core.exceptions import ImproperlyConfigured

MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
# A root worker runs each sandbox as a uid of its own from this range (no passwd entry
# needed): its first uid for probes, then a part each for runs, sandboxes started ahead,
# environment builds and skill replicas (sandbox/sandbox_uids.py), 8 uids at least.
SANDBOX_UIDS_LEAST = 65


def envbool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.environ.get(name, default))


def checked_secret_key(key, *, debug):
    """`key`, or the development key under DEBUG; refused when missing or guessable."""
    if not key:
        if not debug:
            # Sessions, password resets and CSRF tokens are signed with it: a key everyone
            # knows would let anyone forge them, so there is no built-in one.
            raise ImproperlyConfigured(
                "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long random "
                f"string and keep it secret, e.g. the output of: {MAKE_A_KEY} "
                "(`python3 run.py` makes one for you; DEBUG=true runs with a development key)."
            )
        return "django-insecure-development-key-for-DEBUG-only"
    if not debug and (len(key) < 50 or len(set(key)) < 5):
        # A key that can be guessed is as bad as none: Django's measure of one that can't
        # (check --deploy's W009), made a refusal to start.
        raise ImproperlyConfigured(
            f"SECRET_KEY is too weak ({len(key)} characters, {len(set(key))} "
            "different): production needs at least 50 characters, random, e.g. the output of: "
            f"{MAKE_A_KEY} (`python3 run.py` makes one for you). A command that signs nothing, "
            "such as makemigrations --check, may run with DEBUG=true instead."
        )
    return key


def uid_range(text):
    first, _, last = text.partition("-")
    try:
        first, last = int(first), int(last)
    except ValueError:
        first = last = 0
    if not 0 < first <= last < 2**32 - 1 or last - first + 1 < SANDBOX_UIDS_LEAST:
        raise ImproperlyConfigured(
            f"AICENTER_SANDBOX_UIDS={text!r} is not a range of at least {SANDBOX_UIDS_LEAST} "
            "uids, such as 200000-299999: sandboxes run as uids of it (never root, 0), a part "
            "each for runs, sandboxes started ahead, environment builds and skill replicas"
        )
    return first, last
