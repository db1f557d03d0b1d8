"""E-mail to the person who started a pipeline run when it ends, as they asked on
/account/notifications/ (RunMailPreference). Sent from the workers through Django's e-mail
backend (EMAIL_* settings; the console backend by default)."""

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from core.durations import duration_text
from pipelines.models import PipelineRun
from webhooks.models import RunMailPreference


def _wants(preference: str, status: str) -> bool:
    if preference == RunMailPreference.FINISHED:
        return True
    return preference == RunMailPreference.FAILED and status == PipelineRun.FAILED


def run_mail_send(run_id: int) -> bool:
    """E-mail the run's creator about how it ended, if they still want it; whether it was
    sent."""
    run = (
        PipelineRun.objects.select_related("project", "package", "created_by__run_mail_preference")
        .filter(pk=run_id, status__in=PipelineRun.FINISHED)
        .first()
    )
    user = run and run.created_by
    if user is None or not user.email or not user.is_active:
        return False
    preference = getattr(user, "run_mail_preference", None)
    if preference is None or not _wants(preference.runs, run.status):
        return False
    title = f"Pipeline {run.pk}" + (f" ({run.name})" if run.name else "")
    url = settings.AICENTER_URL.rstrip("/") + reverse(
        "pipeline-detail", args=[run.project.slug, run.pk]
    )
    lines = [
        f"{title}, a {run.get_type_display().lower()} of {run.package.name} in project "
        f"{run.project.name} ended: {run.get_status_display()}.",
        f"Duration: {duration_text(run.duration)}.",
    ]
    if run.failure_reason:
        lines.append(f"Reason: {run.failure_reason}")
    lines += [
        "",
        f"Details, log and outputs: {url}",
        "",
        "You get this because you asked for it: change it at "
        f"{settings.AICENTER_URL.rstrip('/')}{reverse('account-notifications')}",
    ]
    send_mail(
        subject=f"[AI Center] {title} {run.get_status_display().lower()} · {run.project.name}",
        message="\n".join(lines),
        from_email=None,  # DEFAULT_FROM_EMAIL
        recipient_list=[user.email],
    )
    return True
