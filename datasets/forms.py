"""The create-dataset form on the datasets page: its fields; the service
(datasets.services.dataset_create) decides whether the name may be used."""

from django import forms


class DatasetForm(forms.Form):
    name = forms.CharField(error_messages={"required": "A name is required."})
    description = forms.CharField(required=False, strip=False)
