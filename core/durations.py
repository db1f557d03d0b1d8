"""Durations in words a person reads at a glance, for pages and for run failure reasons."""


def duration_text(seconds) -> str:
    """12.3 → '12.3 s'; 75 → '1 min 15 s'; 3700 → '1 h 1 min'; None → '—'."""
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
