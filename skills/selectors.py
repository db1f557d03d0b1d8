"""Reads for ML Skills: pages and the API show the same rows."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from core.models import Membership, Project
from packages.models import Package
from skills import channel
from skills.models import Skill, SkillCall, SkillHost
from skills.stats import skill_stats

RELATED = ("project", "package", "version", "serving", "created_by")


def skill_list(*, project):
    return Skill.objects.filter(project=project).select_related(*RELATED).order_by("name")


def skill_get(*, project, name: str) -> Skill:
    skill = Skill.objects.select_related(*RELATED).filter(project=project, name=name).first()
    if skill is None:
        raise Http404(f"No skill '{name}' in this project.")
    return skill


def skill_for_call(*, project: str, name: str, user=None) -> Skill | None:
    """The skill a predict call names, in one plain query (the call's path: no query to
    build): with `user`, only if they may see the project (any role; superusers always).
    Carries what a call needs: its key's digest, status, reason, input type and the project's
    keep_skill_inputs."""
    tables = {
        "skill": Skill._meta.db_table,
        "project": Project._meta.db_table,
        "package": Package._meta.db_table,
        "member": Membership._meta.db_table,
    }
    sql = (
        "SELECT s.id, s.name, s.status, s.reason, s.api_key_digest, p.id, p.keep_skill_inputs,"
        " k.id, k.input_type, {seen} FROM {skill} s"
        " JOIN {project} p ON p.id = s.project_id JOIN {package} k ON k.id = s.package_id"
        " {join} WHERE p.slug = %s AND s.name = %s"
    )
    params = [project, name]
    if user is None or user.is_superuser:
        sql = sql.format(seen="1", join="", **tables)
    else:
        join = "LEFT JOIN {member} m ON m.project_id = p.id AND m.user_id = %s"
        sql = sql.format(seen="m.id", join=join.format(**tables), **tables)
        params.insert(0, user.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None or row[9] is None:  # no such skill, or not a member: not found either way
        return None
    skill = Skill(pk=row[0], name=row[1], status=row[2], reason=row[3], api_key_digest=row[4])
    skill.project = Project(pk=row[5], slug=project, keep_skill_inputs=row[6])
    skill.package = Package(pk=row[7], input_type=row[8])
    return skill


def replicas_up(skills) -> dict[int, int]:
    """Replicas that said they are up lately, per skill: one Redis round trip for all."""
    if not skills:
        return {}
    now = time.time()
    with channel.connection().pipeline(transaction=False) as pipe:
        for skill in skills:
            pipe.zcount(channel.ready_key(skill.pk), now, "+inf")
        counts = pipe.execute()
    return {skill.pk: count for skill, count in zip(skills, counts, strict=True)}


def predict_path(skill) -> str:
    return f"/api/v1/projects/{skill.project.slug}/skills/{skill.name}/predict"


def skill_out_rows(skills, request) -> list[dict]:
    skills = list(skills)
    up = replicas_up(skills)
    stats = skill_stats([s.pk for s in skills])
    return [
        {
            "name": skill.name,
            "package": skill.package.name,
            "version": skill.version.number,
            "serving_version": skill.serving.number if skill.serving else None,
            "status": skill.status,
            "reason": skill.reason,
            "replicas": skill.replicas,
            "replicas_up": up[skill.pk],
            "auto_update": skill.auto_update,
            "alias": skill.alias or None,
            "gpu": skill.gpu,
            "api_key": skill.api_key,  # None but right after create or rotate-key
            "api_key_prefix": skill.api_key_prefix,
            "url": request.build_absolute_uri(predict_path(skill)),
            "created_by": skill.created_by.username if skill.created_by else None,
            "created_at": skill.created_at,
            "last_hour": stats[skill.pk],
            "skill": skill,
        }
        for skill in skills
    ]


def recent_calls(skill, count: int = 20):
    return SkillCall.objects.filter(skill=skill).order_by("-time")[:count]


def skill_page_url(skill) -> str:
    return reverse("skill-detail", args=[skill.project.slug, skill.name])


def skill_hosts_up(*, gpu: bool) -> int:
    """Skill hosts that can take the skill's replicas (GPU skills go to `skillhost --gpu`
    hosts only) and were seen lately: none means a deploying skill waits for one to start."""
    lost = timezone.now() - timedelta(seconds=settings.SKILL_HOST_LOST_AFTER_SECONDS)
    return SkillHost.objects.filter(gpu=gpu, seen_at__gte=lost).count()
