"""The ML Skills pages' forms: what the fields are and their types; the services
(skills.services.skill_create, skill_update) decide whether the skill may be made or changed."""

from django import forms
from django.conf import settings


def _replicas_field():
    most = settings.SKILL_MOST_REPLICAS  # read when the form is made: tests may change it
    message = f"Replicas must be from 1 to {most}."
    return forms.IntegerField(
        min_value=1,
        max_value=most,
        initial=1,
        error_messages={
            "required": "How many replicas? 1 or more.",
            "invalid": "Replicas must be a whole number.",
            "min_value": message,
            "max_value": message,
        },
    )


# The version select's value for following an alias: "alias:champion".
FOLLOW = "alias:"


def _version_field(versions, aliases):
    return forms.ChoiceField(
        choices=[(v.number, v.number) for v in versions]
        + [(FOLLOW + a.name, a.name) for a in aliases],
        error_messages={
            "required": "Choose a version.",
            "invalid_choice": "The package has no version '%(value)s'.",
        },
    )


def _alias_from_version(cleaned: dict) -> dict:
    """One select names a version or an alias to follow: the services take them apart."""
    chosen = cleaned.get("version") or ""
    if chosen.startswith(FOLLOW):
        cleaned["version"], cleaned["alias"] = None, chosen.removeprefix(FOLLOW)
    else:
        cleaned["alias"] = ""
    return cleaned


class SkillForm(forms.Form):
    """Create: `packages` are the project's, `versions` those of the package chosen."""

    name = forms.CharField(error_messages={"required": "A name is required."})
    package = forms.ChoiceField(
        error_messages={
            "required": "Choose a package.",
            "invalid_choice": "No package named '%(value)s' in this project.",
        }
    )
    auto_update = forms.BooleanField(required=False)
    gpu = forms.BooleanField(required=False)

    def __init__(self, *args, packages, versions, aliases=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["package"].choices = [(p.name, p.name) for p in packages]
        self.fields["version"] = _version_field(versions, aliases)
        self.fields["replicas"] = _replicas_field()
        self.versions, self.aliases = versions, aliases

    def clean(self):
        return _alias_from_version(super().clean())


class SkillChangeForm(forms.Form):
    """Update or roll back (`version`, or an alias to follow), scale (`replicas`), follow new
    versions or not."""

    auto_update = forms.BooleanField(required=False)

    def __init__(self, *args, versions, aliases=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"] = _version_field(versions, aliases)
        self.fields["replicas"] = _replicas_field()
        self.versions, self.aliases = versions, aliases

    def clean(self):
        return _alias_from_version(super().clean())
