"""Webhooks in the JSON API (Project admins only). The secret is write-only: given when the
webhook is created (or changed), never answered back."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict

from core.services import ADMIN, project_get_for_user
from webhooks.selectors import delivery_list, webhook_get, webhook_list
from webhooks.services import webhook_create, webhook_delete, webhook_send_test, webhook_update

router = Router(tags=["webhooks"])


class WebhookIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    url: str
    events: list[str]
    secret: str  # at least 16 characters; signs every delivery (X-AICenter-Signature)
    active: bool = True


class WebhookChange(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    url: str | None = None
    events: list[str] | None = None
    secret: str | None = None
    active: bool | None = None


class LastDelivery(Schema):
    status: Literal["pending", "succeeded", "failed"]
    event: str
    created_at: datetime


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    active: bool
    secret_set: bool  # the secret itself is never shown again
    created_by: str | None
    created_at: datetime
    last_delivery: LastDelivery | None


class AttemptOut(Schema):
    time: datetime
    status_code: int | None
    error: str
    duration_ms: int


class DeliveryOut(Schema):
    id: UUID  # X-AICenter-Delivery
    event: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    attempt_list: list[AttemptOut]


def webhook_out(webhook) -> dict:
    last = getattr(webhook, "last_status", None)
    return {
        "id": webhook.pk,
        "url": webhook.url,
        "events": webhook.events,
        "active": webhook.active,
        "secret_set": bool(webhook.secret),
        "created_by": webhook.created_by.username if webhook.created_by else None,
        "created_at": webhook.created_at,
        "last_delivery": last
        and {"status": last, "event": webhook.last_event, "created_at": webhook.last_at},
    }


def delivery_out(delivery) -> dict:
    return {
        "id": delivery.uuid,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "attempt_list": [
            {
                "time": a.time,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in delivery.attempt_rows.all()
        ],
    }


def _project(request, project):
    return project_get_for_user(user=request.user, slug=project, need=ADMIN)


def _webhook(request, project, webhook_id):
    return webhook_get(project=_project(request, project), webhook_id=webhook_id)


@router.get("/{project}/webhooks", response=list[WebhookOut])
def list_webhooks(request, project: str):
    return [webhook_out(w) for w in webhook_list(project=_project(request, project))]


@router.post("/{project}/webhooks", response={201: WebhookOut})
def create_webhook(request, project: str, payload: WebhookIn):
    """Events: pipeline.started, pipeline.finished, pipeline.failed, pipeline.killed,
    version.created, skill.updated, skill.failed, dataset.changed. The URL must resolve to
    public addresses (unless AICENTER_WEBHOOKS_ALLOW_LOCAL=true)."""
    project = _project(request, project)
    webhook = webhook_create(user=request.user, project=project, **payload.dict())
    return Status(201, webhook_out(webhook_get(project=project, webhook_id=webhook.pk)))


@router.get("/{project}/webhooks/{webhook_id}", response=WebhookOut)
def get_webhook(request, project: str, webhook_id: int):
    return webhook_out(_webhook(request, project, webhook_id))


@router.patch("/{project}/webhooks/{webhook_id}", response=WebhookOut)
def change_webhook(request, project: str, webhook_id: int, payload: WebhookChange):
    """Change what is given; a new `secret` signs deliveries from now on."""
    webhook = _webhook(request, project, webhook_id)
    webhook_update(user=request.user, webhook=webhook, **payload.dict())
    return webhook_out(webhook)


@router.delete("/{project}/webhooks/{webhook_id}", response={204: None})
def delete_webhook(request, project: str, webhook_id: int):
    webhook_delete(user=request.user, webhook=_webhook(request, project, webhook_id))
    return Status(204, None)


@router.post("/{project}/webhooks/{webhook_id}/test", response={202: DeliveryOut})
def test_webhook(request, project: str, webhook_id: int):
    """Queue a `ping` delivery; follow it in .../deliveries."""
    webhook = _webhook(request, project, webhook_id)
    delivery = webhook_send_test(user=request.user, webhook=webhook)
    return Status(202, delivery_out(delivery))


@router.get("/{project}/webhooks/{webhook_id}/deliveries", response=list[DeliveryOut])
def list_deliveries(
    request,
    project: str,
    webhook_id: int,
    limit: int = Query(50, ge=1, le=500),  # noqa: B008
    offset: int = Query(0, ge=0, le=2**31),  # noqa: B008
):
    """Newest first, each with its attempts (newest first)."""
    webhook = _webhook(request, project, webhook_id)
    return [delivery_out(d) for d in delivery_list(webhook=webhook)[offset : offset + limit]]
