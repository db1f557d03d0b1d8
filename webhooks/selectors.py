from django.db.models import OuterRef, Subquery
from django.http import Http404

from webhooks.models import Delivery, Webhook


def webhook_list(*, project):
    """The project's webhooks, each with its newest delivery's status and time (one query)."""
    newest = Delivery.objects.filter(webhook=OuterRef("pk")).order_by("-id")
    return (
        Webhook.objects.filter(project=project)
        .select_related("created_by")
        .annotate(
            last_status=Subquery(newest.values("status")[:1]),
            last_at=Subquery(newest.values("created_at")[:1]),
            last_event=Subquery(newest.values("event")[:1]),
        )
        .order_by("id")
    )


def webhook_get(*, project, webhook_id) -> Webhook:
    try:
        webhook_id = int(webhook_id)
    except (TypeError, ValueError):
        raise Http404(f"'{webhook_id}' is not a webhook number.") from None
    webhook = webhook_list(project=project).filter(pk=webhook_id).first()
    if webhook is None:
        raise Http404(f"No webhook {webhook_id} in this project.")
    webhook.project = project  # with the user's role: the services' check reuses it
    return webhook


def delivery_list(*, webhook):
    """Its deliveries newest first, each with its attempts (newest first)."""
    return webhook.deliveries.order_by("-id").prefetch_related("attempt_rows")
