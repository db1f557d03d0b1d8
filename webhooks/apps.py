from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and e-mail"

    def ready(self):
        from core import housekeeping
        from core.events import event_recorded
        from webhooks import dispatch

        # every committed ML Logs event, in the process that wrote it
        event_recorded.connect(dispatch.on_event_recorded, dispatch_uid="webhooks")
        housekeeping.register("deliveries_requeue_lost", _deliveries_requeue_lost)


def _deliveries_requeue_lost() -> None:
    # imported at the first sweep, not as every process starts: deliveries build their payloads
    # from every app's API, which a worker that sends none need not load
    from webhooks.delivery import deliveries_requeue_lost

    deliveries_requeue_lost()
