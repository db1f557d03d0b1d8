"""Writes for ML Skills, and a call to one. Pages, the API and skill hosts all use these."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.services import RUN, name_taken, require
from packages.models import Package, PackageVersion
from skills import channel, stats
from skills.aliases import BOTH, skill_version_chosen
from skills.events import skill_event
from skills.models import Skill

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # part of the skill's URL
RESERVED_NAMES = {"new"}  # /p/<project>/skills/new/ is the create form
# What a skill host answers a call with (skills/host.py, skills/replica.py).
ANSWER_STATUSES = (200, 422, 502, 504)


def _loadable(version) -> PackageVersion:
    """A version whose environment failed to build would fail every replica the same way: it
    is refused until rebuilt (Rebuild on the version's page)."""
    failed = version.environment_builds.filter(status="failed").values_list("detail", flat=True)
    for detail in failed[:1]:
        raise ValidationError(
            {
                "version": f"Version {version.number}'s environment failed to build "
                f"({detail[:300]}); rebuild it on the version's page first."
            }
        )
    return version


def _replica_count(replicas: int) -> str:
    return f"{replicas} replica{'s' if replicas != 1 else ''}"


def _replicas(replicas) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ValidationError({"replicas": "Replicas must be a whole number."})
    if not 1 <= replicas <= settings.SKILL_MOST_REPLICAS:
        raise ValidationError(
            {"replicas": f"Replicas must be from 1 to {settings.SKILL_MOST_REPLICAS}."}
        )
    return replicas


def skill_create(
    *,
    user,
    project,
    name,
    package,
    version=None,
    replicas=1,
    auto_update=False,
    gpu=False,
    alias="",
) -> Skill:
    """Deploy `package` `version` (a number, or an alias's name) as the skill `name`, or the
    version of the alias it is to follow (`alias`): skill hosts start its replicas. The
    returned skill carries its new API key in `api_key`, to show once (only its hash is kept)."""
    require(user=user, project=project, need=RUN)
    errors = {}
    name = (name or "").strip()
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > 100:
        errors["name"] = (
            "A name is 1 to 100 letters, digits, '-' or '_', starting with a letter or digit "
            "(it is part of the skill's URL)."
        )
    elif name.lower() in RESERVED_NAMES:
        errors["name"] = f"'{name}' names a page of the skills list; choose another name."
    elif Skill.objects.filter(project=project, name=name).exists():
        errors["name"] = name_taken(f"A skill named '{name}' already exists in this project.")
    found = Package.objects.filter(project=project, name=package).first()
    if found is None:
        errors["package"] = f"No package named '{package}' in this project."
    try:
        replicas = _replicas(replicas)
    except ValidationError as error:
        errors.update(error.message_dict)
    if found is not None:
        try:
            version = _loadable(
                skill_version_chosen(found, version=version, alias=alias, auto_update=auto_update)
            )
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            skill = Skill(
                project=project,
                name=name,
                package=found,
                version=version,
                replicas=replicas,
                auto_update=bool(auto_update),
                alias=alias or "",
                gpu=bool(gpu),
                created_by=user,
            )
            skill.give_api_key()
            skill.save()
            follows = f", following alias {alias}" if alias else ""
            skill_event(
                skill,
                "deployed",
                actor=user,
                message=f"{found.name} {version.number}, {_replica_count(replicas)}{follows}",
                data={"version": version.number, "replicas": replicas}
                | ({"alias": alias} if alias else {}),
            )
            return skill
    except IntegrityError:
        raise ValidationError(
            {"name": name_taken(f"A skill named '{name}' already exists in this project.")}
        ) from None


def skill_update(
    *, user, skill, version=None, replicas=None, auto_update=None, alias=None
) -> Skill:
    """Change what a skill serves (update or roll back), its replicas, its auto-update, the
    alias it follows ("" to follow none; a version chosen by hand stops the following). A new
    version loads beside the serving one, which keeps answering until the new one is ready:
    this records the request ("update_requested"); "updated" is recorded when the new version
    takes the calls (transitions.serve_new_version), "update_failed" when it can't load."""
    require(user=user, project=skill.project, need=RUN)
    fields = {}
    before = (skill.version.number, skill.replicas, skill.auto_update, skill.alias)
    if alias is not None and alias != skill.alias or version is not None and skill.alias:
        fields["alias"] = alias or ""  # a version chosen by hand is no longer the alias's
    if alias or version is not None:
        chosen = skill_version_chosen(
            skill.package, version=version, alias=alias, auto_update=False
        )
        if chosen.pk != skill.version_id:
            _loadable(chosen)
            fields["version"] = chosen
            fields["failed_version"] = None
            if skill.deployed and chosen.pk == skill.serving_id:  # back to what serves
                fields["status"], fields["reason"] = Skill.AVAILABLE, ""
            elif skill.deployed:
                fields["status"] = Skill.UPDATING if skill.serving_id else Skill.DEPLOYING
                fields["reason"] = ""
    if replicas is not None:
        fields["replicas"] = _replicas(replicas)
    if auto_update is not None:
        fields["auto_update"] = bool(auto_update)
    if fields.get("auto_update", skill.auto_update) and fields.get("alias", skill.alias):
        raise ValidationError({"alias": BOTH})
    for name, value in fields.items():
        setattr(skill, name, value)
    after = (skill.version.number, skill.replicas, skill.auto_update, skill.alias)
    if fields and after != before:
        with transaction.atomic():
            skill.save(update_fields=[*fields, "updated_at"])
            _record_change(skill, user=user, before=before, after=after)
    elif fields:
        skill.save(update_fields=[*fields, "updated_at"])
    return skill


def _record_change(skill, *, user, before, after) -> None:
    changes = []
    if before[0] != after[0]:
        changes.append(f"{before[0]} → {after[0]}")
    if before[1] != after[1]:
        changes.append(f"replicas {before[1]} → {after[1]}")
    if before[2] != after[2]:
        changes.append(f"auto-update {'on' if after[2] else 'off'}")
    if before[3] != after[3]:
        changes.append(f"follows alias {after[3]}" if after[3] else "follows no alias")
    # A new version for a skill that serves one is only asked for here: webhooks hear
    # "skill.updated" once it serves (or "skill.update_failed"), never of a mere request.
    asked = before[0] != after[0] and skill.status == Skill.UPDATING
    skill_event(
        skill,
        "update_requested" if asked else "changed",
        actor=user,
        message=", ".join(changes),
        data={
            "from": before[0],
            "to": after[0],
            "auto": False,
            "replicas": after[1],
            "auto_update": after[2],
        }
        | ({"alias": after[3] or None} if before[3] or after[3] else {}),
    )


def skill_deploy(*, user, skill) -> Skill:
    require(user=user, project=skill.project, need=RUN)
    if not skill.deployed:
        skill.status, skill.reason, skill.serving = Skill.DEPLOYING, "", None
        skill.failed_version = None
        with transaction.atomic():
            skill.save(
                update_fields=["status", "reason", "serving", "failed_version", "updated_at"]
            )
            skill_event(
                skill,
                "deployed",
                actor=user,
                message=f"{skill.package.name} {skill.version.number}, "
                f"{_replica_count(skill.replicas)}",
                data={"version": skill.version.number, "replicas": skill.replicas},
            )
    return skill


def skill_undeploy(*, user, skill) -> Skill:
    """Stop its replicas: calls get 503 until it is deployed again."""
    require(user=user, project=skill.project, need=RUN)
    was = skill.status
    skill.status, skill.reason, skill.serving = Skill.UNDEPLOYED, "", None
    with transaction.atomic():
        skill.save(update_fields=["status", "reason", "serving", "updated_at"])
        if was != Skill.UNDEPLOYED:
            skill_event(skill, "undeployed", actor=user, message="Its replicas stop")
    return skill


def skill_rotate_key(*, user, skill) -> Skill:
    """A new API key, in the returned skill's `api_key` to show once (only its hash is kept);
    the old one stops working at once."""
    require(user=user, project=skill.project, need=RUN)
    skill.give_api_key()
    with transaction.atomic():
        skill.save(update_fields=["api_key_digest", "api_key_prefix", "updated_at"])
        # never the key itself: ML Logs are read by every member of the project
        skill_event(skill, "key_rotated", actor=user, message="New API key; the old one stopped")
    return skill


def skill_delete(*, user, skill) -> None:
    require(user=user, project=skill.project, need=RUN)
    with transaction.atomic():
        skill_event(skill, "deleted", actor=user, url=False)
        skill.delete()  # skill hosts stop its replicas: their rows went with it


def skill_predict(*, skill, body: bytes) -> tuple[int, dict, bytes]:
    """Call the skill: (status, header, body) of its answer. 503 when no replica is up or
    Redis can't be reached, 504 past the call time limit; 422 when predict raised."""
    timeout = settings.SKILL_CALL_TIMEOUT_SECONDS
    with stats.timed(skill) as call:
        if not skill.deployed:
            call.status = 503
            why = (
                f"Skill {skill.name} failed to deploy: {skill.reason}"
                if skill.status == Skill.FAILED
                else f"Skill {skill.name} is undeployed: deploy it to call it."
            )
            return 503, {"detail": why}, b""
        try:
            header, answer = channel.send(skill.pk, body, timeout=timeout)
        except channel.NoReplica:
            call.status = 503
            detail = f"No replica of skill {skill.name} is up yet; try again in a few seconds."
            return 503, {"detail": detail}, b""
        except channel.CallTimeout:
            header = {"status": 504}
        except channel.Unreachable:
            call.status = 503
            detail = "Skill calls can't reach Redis, through which they travel; try again soon."
            return 503, {"detail": detail}, b""
        call.status = _answer_status(header)
        if call.status == 504:  # here, or the skill host's (it stopped the stuck replica)
            return 504, {"detail": f"No answer within {timeout:g} s."}, b""
        call.input = body
        return call.status, header, answer


def _answer_status(header: dict) -> int:
    """The status of a skill host's answer: one it gives (the replica's 200 or 422, its own 502
    or 504), else 502: nothing unchecked becomes an HTTP status or a call's record."""
    status = header.get("status")
    return status if type(status) is int and status in ANSWER_STATUSES else 502
