from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        from environments.builds import environment_building
        from pipelines import transitions

        environment_building.connect(transitions.build_started, dispatch_uid="pipelines")
