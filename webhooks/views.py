"""The Webhooks pages (Project admins only: the list, create, edit, a webhook's deliveries
with their attempts, Send a test event, delete) and a user's e-mail preference. Every change
goes through webhooks.services, as the API's do."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.pages import done, page_of
from core.services import ADMIN, project_get_for_user
from webhooks.forms import RunMailForm, WebhookForm
from webhooks.models import Delivery
from webhooks.selectors import delivery_list, webhook_get, webhook_list
from webhooks.services import (
    run_mail_preference_get,
    run_mail_preference_set,
    secret_suggestion,
    webhook_create,
    webhook_delete,
    webhook_send_test,
    webhook_update,
)

DELIVERIES_PER_PAGE = 25
# The deliveries poll while one of them is about to be attempted (a retry hours away: no).
POLL_BEFORE_SECONDS = 60


def _posted(request):
    """The form's data on a POST (even an empty one: its fields are then missing), else None."""
    return request.POST if request.method == "POST" else None


def _detail_url(project, webhook):
    return reverse("webhook-detail", args=[project.slug, webhook.pk])


@login_required
def webhook_list_page(request, project):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    context = {"project": project, "webhooks": webhook_list(project=project)}
    return render(request, "webhooks/list.html", context)


def _save(form, save):
    """Call `save(**fields)` with the form's values; the service's errors go to their fields.
    The result, or None when something is wrong (then the form holds why)."""
    if not form.is_valid():
        return None
    try:
        return save(**form.cleaned_data)
    except ValidationError as error:
        form.add_error(None, error)
        return None


@login_required
def webhook_new(request, project):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    form = WebhookForm(
        _posted(request),
        initial={"secret": secret_suggestion(), "active": True, "events": ["pipeline.failed"]},
    )
    if request.method == "POST":
        webhook = _save(
            form, lambda **fields: webhook_create(user=request.user, project=project, **fields)
        )
        if webhook:
            messages.success(request, "Webhook created. Its secret is not shown again.")
            return done(request, _detail_url(project, webhook))
    context = {"project": project, "form": form, "creating": True}
    return render(request, "webhooks/form.html", context, status=400 if form.errors else 200)


@login_required
def webhook_edit(request, project, webhook_id):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    webhook = webhook_get(project=project, webhook_id=webhook_id)
    initial = {"url": webhook.url, "events": webhook.events, "active": webhook.active}
    form = WebhookForm(_posted(request), initial=initial)
    if request.method == "POST":

        def save(*, secret, **fields):  # an empty secret keeps the current one
            return webhook_update(
                user=request.user, webhook=webhook, secret=secret or None, **fields
            )

        if _save(form, save):
            return done(request, _detail_url(project, webhook))
    context = {"project": project, "form": form, "webhook": webhook, "creating": False}
    return render(request, "webhooks/form.html", context, status=400 if form.errors else 200)


@login_required
def webhook_detail(request, project, webhook_id):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    webhook = webhook_get(project=project, webhook_id=webhook_id)
    page = page_of(request, delivery_list(webhook=webhook), per_page=DELIVERIES_PER_PAGE)
    soon = timezone.now() + timedelta(seconds=POLL_BEFORE_SECONDS)
    polling = any(
        d.status == Delivery.PENDING and (d.next_attempt_at is None or d.next_attempt_at < soon)
        for d in page
    )
    context = {"project": project, "webhook": webhook, "page": page, "polling": polling}
    partial = request.htmx and request.GET.get("part") == "deliveries"
    template = "webhooks/detail.html#deliveries" if partial else "webhooks/detail.html"
    return render(request, template, context)


@login_required
@require_POST
def webhook_test(request, project, webhook_id):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    webhook = webhook_get(project=project, webhook_id=webhook_id)
    webhook_send_test(user=request.user, webhook=webhook)
    messages.success(request, "A test event (ping) is queued: it appears below once attempted.")
    return done(request, _detail_url(project, webhook))


@login_required
@require_POST
def webhook_delete_page(request, project, webhook_id):
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    webhook_delete(user=request.user, webhook=webhook_get(project=project, webhook_id=webhook_id))
    messages.success(request, "Webhook deleted.")
    return done(request, reverse("webhook-list", args=[project.slug]))


@login_required
def account_notifications(request):
    form = RunMailForm(
        _posted(request), initial={"runs": run_mail_preference_get(user=request.user)}
    )
    if request.method == "POST" and form.is_valid():
        run_mail_preference_set(user=request.user, runs=form.cleaned_data["runs"])
        messages.success(request, "Saved.")
        return done(request, reverse("account-notifications"))
    status = 400 if form.errors else 200
    return render(request, "webhooks/notifications.html", {"form": form}, status=status)
