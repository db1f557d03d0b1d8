from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The ground floor: projects and roles, storage, manifests, ML Logs writing. Its label
    stays "aicenter", the app these models were born in, so their tables, migrations and
    permissions keep their names."""

    name = "core"
    label = "aicenter"
    verbose_name = "AI Center"
