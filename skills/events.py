"""A skill's ML Logs events, as its services and transitions write them."""

from django.urls import reverse

from core.events import record


def skill_event(skill, action, *, actor=None, message="", data=None, url=True):
    """A skill's ML Logs event; `actor` None is the system (auto-update, a failure)."""
    project = skill.project
    return record(
        project=project,
        category="skill",
        action=action,
        actor=actor,
        object_type="skill",
        object_key=skill.name,
        object_name=skill.name,
        url=reverse("skill-detail", args=[project.slug, skill.name]) if url else "",
        message=message,
        data=data,
    )
