from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """The ML Logs' pages, API and retention; the events themselves are written by the core
    (core/events.py) and stored in its Event model."""

    name = "governance"
    verbose_name = "ML Logs"

    def ready(self):
        from core import housekeeping
        from governance.retention import events_expire_hourly

        housekeeping.register("events_expire", events_expire_hourly)
