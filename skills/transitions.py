"""Every change of a skill's status or a replica's state that skill hosts make happens here.

As pipelines/transitions.py: each is one conditional UPDATE, or one transaction with the
skill's row locked, so two hosts (or a host and a person changing the skill) acting at once
can't overwrite each other: the one that comes second finds the condition false and changes
nothing. What people do to a skill (deploy, update, undeploy) is its services'.

    replica: Starting → Ready → (crashed) Starting → … ; failed to load: its row deleted
    skill: Deploying | Updating → Available (all replicas of its version loaded) | Failed
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from packages.models import PackageAlias, PackageVersion
from skills.events import skill_event
from skills.models import Skill, SkillReplica

# What auto-update puts in a skill's reason while the new version loads: once it serves, the
# "updated" event says the update was automatic.
AUTO_UPDATE_REASON = "auto-update to "


def replica_ready(row_id: int) -> bool:
    """Starting → Ready: the replica loaded (again)."""
    return bool(
        SkillReplica.objects.filter(pk=row_id).update(
            state=SkillReplica.READY, ready_at=timezone.now(), error=""
        )
    )


def replica_restarting(row_id: int) -> bool:
    """Ready → Starting: the replica crashed and is started again, counted."""
    return bool(
        SkillReplica.objects.filter(pk=row_id).update(
            state=SkillReplica.STARTING, restarts=F("restarts") + 1
        )
    )


def serve_new_version(skill) -> None:
    """All the replicas of the skill's version have loaded: calls go to them now. When that
    moves the skill off another version, the update is done: "updated". One conditional
    UPDATE, so of two hosts that see it at once, one records it."""
    previous = skill.serving_id
    with transaction.atomic():
        moved = Skill.objects.filter(
            pk=skill.pk, version_id=skill.version_id, serving_id=previous
        ).update(serving_id=skill.version_id, status=Skill.AVAILABLE, reason="")
        if not moved or previous in (None, skill.version_id):
            return
        versions = PackageVersion.objects.in_bulk([previous, skill.version_id])
        old, new = versions[previous].number, versions[skill.version_id].number
        # follow_newest says so in the reason while the update loads; a person's
        # update clears it
        auto = skill.reason.startswith(AUTO_UPDATE_REASON)
        moved_alias = bool(skill.alias) and skill.reason.startswith(f"alias {skill.alias} ")
        how = " (auto-update)" if auto else f" (alias {skill.alias} moved)" if moved_alias else ""
        skill_event(
            skill,
            "updated",
            message=f"{old} → {new}{how}, now serving",
            data={"from": old, "to": new, "auto": auto or moved_alias}
            | ({"alias": skill.alias} if moved_alias else {}),
        )


def follow_newest(skill) -> None:
    """Auto-update: the newest minor version of the skill's major, once one is newer than what
    it has (and is not the one that just failed to load)."""
    newest = (
        PackageVersion.objects.filter(
            package_id=skill.package_id,
            major=skill.version.major,
            minor__gt=skill.version.minor,
        )
        .exclude(pk=skill.failed_version_id or 0)
        .order_by("-minor")
        .first()
    )
    if newest is None:
        return
    asked = bool(skill.serving_id)  # else nothing serves yet: it loads as a deployment
    with transaction.atomic():
        moved = Skill.objects.filter(pk=skill.pk, version_id=skill.version_id).update(
            version=newest,
            status=Skill.UPDATING if asked else Skill.DEPLOYING,
            reason=f"{AUTO_UPDATE_REASON}{newest.number}",
        )
        if moved:  # another host's tick may have moved it first: one event
            number = skill.version.number
            skill_event(
                skill,
                "update_requested" if asked else "changed",
                message=f"{number} → {newest.number} (auto-update)",
                data={"from": number, "to": newest.number, "auto": True},
            )


def follow_alias(skill) -> None:
    """Following an alias: the version it points at, once that is another than the skill's
    (and not the one that just failed to load). While the alias is gone, nothing changes."""
    target = (
        PackageAlias.objects.filter(
            package_id=skill.package_id, name=skill.alias, version__deleted_at=None
        )
        .select_related("version")
        .first()
    )
    if target is None or target.version_id in (skill.version_id, skill.failed_version_id):
        return
    with transaction.atomic():
        moved = Skill.objects.filter(
            pk=skill.pk, version_id=skill.version_id, alias=skill.alias
        ).update(
            version=target.version,
            status=Skill.UPDATING if skill.serving_id else Skill.DEPLOYING,
            reason=f"alias {skill.alias} moved to {target.version.number}",
        )
        if moved:  # another host's tick may have moved it first: one event
            number, new = skill.version.number, target.version.number
            skill_event(
                skill,
                "update_requested" if skill.serving_id else "changed",
                message=f"{number} → {new} (alias {skill.alias} moved)",
                data={"from": number, "to": new, "auto": True, "alias": skill.alias},
            )


def replica_failed(*, row_id: int, reason: str, loaded: bool) -> None:
    """A replica could not load (`loaded`: it had, then crashed and could not again). A new
    version that fails leaves the serving one in place, and the skill says why; a first
    deployment that fails is Failed."""
    with transaction.atomic():
        row = SkillReplica.objects.select_related("version").filter(pk=row_id).first()
        if row is None:
            return
        row.delete()
        skill = Skill.objects.select_for_update().filter(pk=row.skill_id).first()
        if (
            skill is None
            or skill.version_id != row.version_id
            or skill.serving_id == skill.version_id
        ):
            return  # a replica of the serving version: its slot is claimed and tried again
        number = row.version.number
        update = bool(skill.serving_id)
        if update:
            skill.failed_version_id = skill.version_id
            skill.version_id = skill.serving_id
            skill.status = Skill.AVAILABLE
            skill.reason = (
                f"Version {number} failed to load, so the previous one still serves: {reason}"
            )
        else:
            skill.status = Skill.FAILED
            skill.reason = f"Version {number} failed to load: {reason}"
        skill.save(update_fields=["version", "failed_version", "status", "reason", "updated_at"])
        SkillReplica.objects.filter(skill=skill, version_id=row.version_id).delete()
        skill_event(
            skill,
            "update_failed" if update else "failed",
            message=skill.reason[:500],
            data={"version": number, "reason": reason, "still_serving": update},
        )
