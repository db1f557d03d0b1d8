from django import template

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
