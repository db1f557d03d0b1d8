"""Which version a skill is given when it is deployed or changed: a version number, an alias's
name (the version it points at now, once), or an alias to follow (`alias`: the version it
points at, and again whenever it moves; skills.transitions.follow_alias)."""

import re

from django.core.exceptions import ValidationError

from packages.aliases import ALIAS_PATTERN, alias_list, version_by_reference
from packages.models import PackageVersion

BOTH = "A skill follows either the newest version of its major (auto-update) or an alias, not both."


def _choices(package) -> str:
    numbers = ", ".join(v.number for v in package.versions.all()[:20])
    aliases = ", ".join(a.name for a in alias_list(package=package))
    return numbers + (f"; aliases: {aliases}" if aliases else "")


def version_chosen(package, reference, field="version") -> PackageVersion:
    """The version `reference` names: a number (1.2) or an alias's name."""
    version = version_by_reference(package=package, reference=reference)
    if not reference:
        message = f"Choose a version of {package.name}, or an alias to follow"
        raise ValidationError({field: f"{message} (it has: {_choices(package)})."})
    if version is None:
        raise ValidationError(
            {
                field: f"Package {package.name} has no version '{reference or ''}' "
                f"(it has: {_choices(package)})."
            }
        )
    return version


def alias_followed(package, *, alias, version) -> PackageVersion:
    """The version of the alias a skill is to follow; `version`, when given too, must be it."""
    if not re.fullmatch(ALIAS_PATTERN, alias):
        raise ValidationError({"alias": f"'{alias}' is not an alias's name (champion, staging)."})
    followed = package.aliases.filter(name=alias, version__deleted_at=None).first()
    if followed is None:
        choices = _choices(package)
        raise ValidationError(
            {"alias": f"Package {package.name} has no alias '{alias}' (it has: {choices})."}
        )
    if (
        version not in (None, "")
        and version_by_reference(package=package, reference=version) != followed.version
    ):
        raise ValidationError(
            {
                "version": f"Alias {alias} points at {followed.version.number}: leave the "
                "version out, or give that one."
            }
        )
    return followed.version


def skill_version_chosen(package, *, version, alias, auto_update) -> PackageVersion:
    """What a skill deployed or changed with these inputs serves."""
    if alias and auto_update:
        raise ValidationError({"alias": BOTH})
    if alias:
        return alias_followed(package, alias=alias, version=version)
    return version_chosen(package, version)
