"""Version aliases: a name such as `champion` or `staging` that points at one version of a
package and is moved by people. Set, moved and removed here (pages and API alike), each an
ML Logs event; read by `version_by_reference` wherever a version is chosen (a run's, a
skill's), and followed by skills that say so (skills.transitions.follow_alias)."""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.urls import reverse

from core.errors import conflict
from core.events import record
from core.services import RUN, require
from packages.models import PackageAlias, PackageVersion

# It starts with a letter, so it is never read as a version number (1.2).
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
# MLflow's word for the newest version: a package's newest is not an alias to be moved.
RESERVED_ALIASES = {"latest"}
_NUMBER = re.compile(r"^(\d{1,9})\.(\d{1,9})$")


def alias_list(*, package) -> list[PackageAlias]:
    return list(package.aliases.select_related("version", "updated_by"))


def version_by_reference(*, package, reference: str) -> PackageVersion | None:
    """The version a person means by `reference`: its number (1.2) or an alias's name; None
    when the package has neither."""
    reference = str(reference or "")
    if match := _NUMBER.fullmatch(reference):
        return package.versions.filter(major=int(match[1]), minor=int(match[2])).first()
    alias = package.aliases.filter(name=reference).select_related("version").first()
    return alias.version if alias and alias.version.deleted_at is None else None


def _clean_name(name) -> str:
    name = str(name or "").strip()
    if not re.fullmatch(ALIAS_PATTERN, name):
        raise ValidationError(
            {
                "alias": "An alias is 1 to 40 letters, digits, '-' or '_', starting with a "
                "letter (champion, staging)."
            }
        )
    if name.lower() in RESERVED_ALIASES:
        raise ValidationError({"alias": f"'{name}' can't be an alias: it means the newest."})
    return name


def _record(package, action, *, user, name, message, data):
    return record(
        project=package.project,
        category="package",
        action=action,
        actor=user,
        object_type="package",
        object_key=package.name,
        object_name=package.name,
        url=reverse("package-detail", args=[package.project.slug, package.name]),
        message=message,
        data={"alias": name, **data},
    )


def alias_set(*, user, package, name, version) -> PackageAlias:
    """Point the alias `name` at `version` (a number such as "1.2"), creating it or moving it;
    skills that follow it update to that version."""
    require(user=user, project=package.project, need=RUN)
    errors = {}
    try:
        name = _clean_name(name)
    except ValidationError as error:
        errors.update(error.message_dict)
    target = _NUMBER.fullmatch(str(version or "")) and version_by_reference(
        package=package, reference=version
    )
    if not target:
        numbers = ", ".join(v.number for v in package.versions.all()[:20]) or "none"
        errors["version"] = (
            f"Package {package.name} has no version '{version or ''}' (it has: {numbers})."
        )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        alias = package.aliases.select_for_update().filter(name=name).first()
        before = alias.version.number if alias else None
        if alias is None:
            try:
                with transaction.atomic():
                    alias = PackageAlias.objects.create(
                        package=package, name=name, version=target, updated_by=user
                    )
            except IntegrityError:  # set by someone else a moment ago: refuse, say so
                raise conflict(f"Alias {name} was just set by someone else; try again.") from None
        elif alias.version_id != target.pk:
            alias.version, alias.updated_by = target, user
            alias.save(update_fields=["version", "updated_by", "updated_at"])
        else:
            return alias  # already there: nothing moved, nothing to record
        moved = f" (was {before})" if before else ""
        _record(
            package,
            "alias_set",
            user=user,
            name=name,
            message=f"{name} → {target.number}{moved}",
            data={"version": target.number, "previous": before},
        )
    return alias


def alias_remove(*, user, package, name) -> None:
    """Remove the alias: skills that follow it keep the version they have."""
    require(user=user, project=package.project, need=RUN)
    with transaction.atomic():
        alias = package.aliases.select_related("version").filter(name=str(name)).first()
        if alias is None:
            raise Http404(f"Package {package.name} has no alias '{name}'.")
        alias.delete()
        _record(
            package,
            "alias_removed",
            user=user,
            name=alias.name,
            message=f"{alias.name} removed (it pointed at {alias.version.number})",
            data={"version": alias.version.number},
        )
