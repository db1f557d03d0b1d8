from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    """The kit that builds and keeps package environments (a Python and its requirements), for
    pipelines, skills and packages."""

    name = "environments"
    verbose_name = "Package environments"
