"""The create-package page's form: what the fields are and their types; the service
(packages.services.package_create) decides whether the package may be made."""

from django import forms
from django.conf import settings

from packages.models import Package


class PackageForm(forms.Form):
    # Messages as the service words them, which the API answers with.
    name = forms.CharField(error_messages={"required": "A name is required."})
    file = forms.FileField(
        error_messages={
            "required": "Choose a zip file.",
            "empty": "This file is not a zip archive.",
        }
    )
    description = forms.CharField(required=False, strip=False)
    input_type = forms.ChoiceField(
        choices=Package.INPUT_TYPES,
        required=False,  # JSON when not given
        initial="json",
        error_messages={
            "invalid_choice": "'%(value)s' is not an input type; use json, file or files."
        },
    )
    input_description = forms.CharField(required=False, strip=False)
    output_description = forms.CharField(required=False, strip=False)
    language = forms.ChoiceField(required=False)  # the first Python version when not given
    gpu_required = forms.BooleanField(required=False)
    training_enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the versions this installation has (AICENTER_PYTHON_VERSIONS), read when used
        versions = settings.PYTHON_VERSIONS
        self.fields["language"].choices = [(v, f"Python {v}") for v in versions]
        self.fields["language"].initial = versions[0]
        self.fields["language"].error_messages["invalid_choice"] = (
            f"Python %(value)s is not available here; choose one of {', '.join(versions)}."
        )

    def clean_input_type(self):
        return self.cleaned_data["input_type"] or "json"
