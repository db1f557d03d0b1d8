"""The body of a delivery: {"event", "time", "project", "data"}, where data is the object as
the JSON API shows it, made by the API's own serializers (so a receiver reads the same fields
as a GET of the object), when the delivery is first attempted."""

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404

from datasets.api import DatasetOut
from datasets.selectors import dataset_get
from packages.api import version_out
from packages.selectors import package_get, version_get
from pipelines.schemas import pipeline_out
from pipelines.selectors import pipeline_run_get
from skills.selectors import skill_get, skill_out_rows
from webhooks.models import PING


class _Site:
    """What skill_out_rows needs of a request, on a worker that has none: absolute URLs
    start at AICENTER_URL."""

    def build_absolute_uri(self, path):
        return settings.AICENTER_URL.rstrip("/") + path


def _pipeline(project, key):
    return pipeline_out(pipeline_run_get(project=project, run_id=key))


def _version(project, key):
    name, number = key.rsplit(" ", 1)
    return version_out(version_get(package=package_get(project=project, name=name), number=number))


def _skill(project, key):
    (row,) = skill_out_rows([skill_get(project=project, name=key)], _Site())
    row.pop("skill")  # the model object the pages use
    # The key is never in a skill read from the database (only its hash is kept); the field
    # is left out, as the API's answers after create and rotate-key are the only ones with it.
    row.pop("api_key")
    return row


def _dataset(project, key):
    dataset = dataset_get(project=project, name=key, with_totals=True)
    return DatasetOut.from_orm(dataset).dict()


SERIALIZERS = {
    "pipeline": _pipeline,
    "version": _version,
    "skill": _skill,
    "dataset": _dataset,
}


def event_data(event) -> dict:
    """The event's object as the API shows it now; when it is gone (deleted meanwhile), what
    the event remembers of it."""
    kind, key = event.object_type, event.object_key
    version = (event.data or {}).get("version")
    if (event.category, kind) == ("package", "package") and version:
        kind, key = "version", f"{key} {version}"  # a new package: its version 1.0
    serializer = SERIALIZERS.get(kind)
    if serializer is not None:
        try:
            return serializer(event.project, key)
        except (Http404, ValueError):
            pass
    return {
        "type": event.object_type,
        "key": event.object_key,
        "name": event.object_name,
        "deleted": serializer is not None,
    }


def delivery_body(delivery, event) -> str:
    """The JSON text of `delivery` (of `event`, None for a test event)."""
    webhook = delivery.webhook
    if delivery.event == PING:
        time, data = (
            delivery.created_at,
            {
                "webhook": webhook.pk,
                "url": webhook.url,
                "events": webhook.events,
                "message": "A test event from AI Center: this webhook is reached and signed.",
            },
        )
    elif event is None:  # past the ML Logs retention before its first attempt
        time, data = delivery.created_at, {}
    else:
        time, data = event.time, event_data(event)
    body = {"event": delivery.event, "time": time, "project": webhook.project.slug, "data": data}
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"))
