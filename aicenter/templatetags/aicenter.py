import zoneinfo

from django import template
from django.utils import dateformat, timezone

register = template.Library()

STATUS_STYLE = {
    "scheduled": "neutral",
    "queued": "neutral",
    "packaging": "info",
    "running": "info",
    "successful": "ok",
    "failed": "err",
    "killed": "warn",
}


@register.filter
def duration(seconds):
    """12.3 → '12.3 s'; 75 → '1 min 15 s'; 3700 → '1 h 1 min'."""
    if seconds is None or seconds == "":
        return "—"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def status_style(status):
    return STATUS_STYLE.get(status, "neutral")


@register.filter
def moment(value, zone=""):
    """A time with its zone, and its date when not today there: '09:08:20 UTC',
    'Nov 26, 2026 09:08:20 UTC'; in `zone` ('Europe/Paris') when given, else the site's."""
    if not value:
        return "—"
    try:
        tz = zoneinfo.ZoneInfo(zone) if zone else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz, zone = timezone.get_current_timezone(), ""
    local = timezone.localtime(value, tz)
    today = timezone.localtime(timezone.now(), tz).date()
    shape = "H:i:s" if local.date() == today else "M j, Y H:i:s"
    return f"{dateformat.format(local, shape)} {zone or timezone.get_current_timezone_name()}"
