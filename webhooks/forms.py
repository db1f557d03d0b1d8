"""The Webhooks pages' forms: fields and their types; webhooks.services decides what is valid
(the same checks as the API's), and its messages are shown at the fields."""

from django import forms

from webhooks.models import EVENTS, RunMailPreference


class WebhookForm(forms.Form):
    url = forms.CharField(required=False, max_length=2000)
    events = forms.MultipleChoiceField(
        choices=EVENTS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Unknown event: %(value)s."},
    )
    # Creating: required (prefilled with a random one). Editing: empty keeps the current one.
    secret = forms.CharField(required=False, max_length=200, strip=False)
    active = forms.BooleanField(required=False)


class RunMailForm(forms.Form):
    runs = forms.ChoiceField(
        choices=RunMailPreference.CHOICES,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose when to be e-mailed.",
            "invalid_choice": "'%(value)s' is not a choice.",
        },
    )
