"""'When to run' a pipeline: now, at a moment, or recurring (every N hours, days or weeks, or a
cron rule) in a time zone, as the create form and the API give it."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from django.core.exceptions import ValidationError

from pipelines.models import Schedule

TIMEZONES = sorted(zoneinfo.available_timezones())
STEPS = {
    Schedule.HOURS: timedelta(hours=1),
    Schedule.DAYS: timedelta(days=1),
    Schedule.WEEKS: timedelta(weeks=1),
}


@dataclass
class When:
    """'When to run': now, at a moment, or recurring (every N units, or cron) in a time zone."""

    kind: str = "now"  # now | at | recurring
    at: datetime | None = None
    every: int | None = None
    unit: str = ""
    cron: str = ""
    timezone: str = "UTC"


def zone_named(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            {"timezone": f"'{name}' is not a time zone, e.g. Europe/Paris."}
        ) from None


def clean_when(raw) -> When:
    """'When to run' from the API or the form: None or {} (now); {"at": ...}; {"every", "unit"};
    or {"cron"}; each with an optional "timezone" (UTC by default) and "starts_at"."""
    if not raw:
        return When()
    if not isinstance(raw, dict):
        raise ValidationError({"schedule": "schedule must be null or an object."})
    zone_name = str(raw.get("timezone") or "UTC")
    zone = zone_named(zone_name)
    when = When(timezone=zone_name)

    def moment(value, field):
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                raise ValidationError(
                    {
                        "schedule": f"{field}: '{value}' is not a date and time like "
                        "2026-12-01T08:30."
                    }
                ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)

    if raw.get("at"):
        when.kind, when.at = "at", moment(raw["at"], "at")
        return when
    when.kind = "recurring"
    when.at = moment(raw["starts_at"], "starts_at") if raw.get("starts_at") else None
    if raw.get("cron"):
        when.cron = " ".join(str(raw["cron"]).split())
        if not croniter.is_valid(when.cron):
            raise ValidationError(
                {"schedule": f"'{when.cron}' is not a cron expression like '0 3 * * 1'."}
            )
        return when
    try:
        when.every = int(raw.get("every"))
        if when.every < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(
            {
                "schedule": "Give 'at', a cron expression, or 'every' as a "
                "whole number of hours, days or weeks (1 or more)."
            }
        ) from None
    when.unit = str(raw.get("unit") or "")
    if when.unit not in STEPS:
        raise ValidationError({"schedule": "unit must be hours, days or weeks."})
    return when
