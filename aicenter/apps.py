from django.apps import AppConfig


class SiteConfig(AppConfig):
    """The roof: settings, URLs, the API mount, the project pages and `manage.py start`. An
    app only for its command and template tags; "aicenter" is the core's label."""

    name = "aicenter"
    label = "site"
    verbose_name = "AI Center site"
