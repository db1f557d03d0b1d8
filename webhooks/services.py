"""Webhooks of a project (Project admins only) and each user's run e-mail preference. The
pages and the API call these; they check the user's role themselves."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from core.services import ADMIN, require
from webhooks.delivery import delivery_enqueue
from webhooks.dispatch import listeners_changed
from webhooks.models import EVENTS, PING, Delivery, RunMailPreference, Webhook
from webhooks.outbound import resolve

EVENT_NAMES = [name for name, _ in EVENTS]
SECRET_MIN_CHARS = 16
SECRET_MAX_CHARS = 200


def secret_suggestion() -> str:
    """A random secret for the create form (the person copies it into their receiver)."""
    return secrets.token_urlsafe(24)


def _clean_url(url) -> str:
    resolve(url)  # refused (a ValidationError that says why) unless public, or allowed local
    return url.strip()


def _clean_events(events) -> list[str]:
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) for e in events):
        raise ValidationError("Give the events as a list of names, e.g. ['pipeline.failed'].")
    unknown = [e for e in events if e not in EVENT_NAMES]
    if unknown:
        raise ValidationError(
            f"Unknown event{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"The events are: {', '.join(EVENT_NAMES)}."
        )
    if not events:
        raise ValidationError("Choose at least one event.")
    return [name for name in EVENT_NAMES if name in events]


def _clean_secret(secret) -> str:
    if not isinstance(secret, str) or len(secret.strip()) < SECRET_MIN_CHARS:
        raise ValidationError(
            f"The secret must be at least {SECRET_MIN_CHARS} characters long: a random string, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'."
        )
    if len(secret) > SECRET_MAX_CHARS:
        raise ValidationError(f"The secret is too long: {SECRET_MAX_CHARS} characters at most.")
    return secret


def _cleaned(**fields) -> dict:
    """Each given field cleaned; every problem at once, under its field's name."""
    cleaners = {"url": _clean_url, "events": _clean_events, "secret": _clean_secret}
    cleaned, errors = {}, {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "active":
            if not isinstance(value, bool):
                errors[name] = ["active must be true or false."]
            else:
                cleaned[name] = value
            continue
        try:
            cleaned[name] = cleaners[name](value)
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def webhook_create(*, user, project, url: str, events: list[str], secret: str, active=True):
    """A webhook of `project` calling `url` on each of `events`, its deliveries signed with
    `secret` (at least 16 characters). `user` must be a Project admin."""
    require(user=user, project=project, need=ADMIN)
    fields = _cleaned(url=url or "", events=events, secret=secret or "", active=active)
    webhook = Webhook.objects.create(project=project, created_by=user, **fields)
    listeners_changed()
    return webhook


def webhook_update(*, user, webhook, url=None, events=None, secret=None, active=None):
    """Change what is given (None: as it is). A new secret signs the deliveries from now on,
    retries of older ones too."""
    require(user=user, project=webhook.project, need=ADMIN)
    fields = _cleaned(url=url, events=events, secret=secret, active=active)
    for name, value in fields.items():
        setattr(webhook, name, value)
    if fields:
        webhook.save(update_fields=list(fields))
        listeners_changed()
    return webhook


def webhook_delete(*, user, webhook) -> None:
    """Delete the webhook with its deliveries; retries queued for them find nothing to do."""
    require(user=user, project=webhook.project, need=ADMIN)
    webhook.delete()
    listeners_changed()


def webhook_send_test(*, user, webhook) -> Delivery:
    """Queue a `ping` delivery (sent even when the webhook is turned off), to check the
    receiver is reached and verifies the signature."""
    require(user=user, project=webhook.project, need=ADMIN)
    delivery = Delivery.objects.create(webhook=webhook, event=PING)
    transaction.on_commit(lambda: delivery_enqueue(delivery))
    return delivery


def run_mail_preference_get(*, user) -> str:
    preference = RunMailPreference.objects.filter(user=user).first()
    return preference.runs if preference else RunMailPreference.NEVER


def run_mail_preference_set(*, user, runs: str) -> RunMailPreference:
    """When `user` is e-mailed about the runs they start: never, failed or finished."""
    if runs not in dict(RunMailPreference.CHOICES):
        choices = ", ".join(dict(RunMailPreference.CHOICES))
        raise ValidationError({"runs": [f"'{runs}' is not a choice: one of {choices}."]})
    preference, _ = RunMailPreference.objects.update_or_create(user=user, defaults={"runs": runs})
    listeners_changed()
    return preference
