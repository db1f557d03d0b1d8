import math
import zoneinfo

from django import template
from django.utils import dateformat, timezone

from core.durations import duration_text

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
    return duration_text(seconds)


@register.filter
def words(name):
    """A stored name as words: 'files_uploaded' → 'files uploaded'."""
    return str(name).replace("_", " ")


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


@register.filter
def metric(value):
    """A metric's value as the charts show it (static/js/metrics.js): at most 5 significant
    digits, exponent notation for the very small and very large, '—' for none (NaN)."""
    if value is None or not math.isfinite(value):
        return "—"
    if value and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.3e}"
    text = repr(float(f"{value:.5g}"))
    return text.removesuffix(".0")
