"""Webhooks and e-mail hear of every committed ML Logs event here (governance.events.record).
It runs in the request or the worker that recorded the event: it must be quick and never
raise, and it only enqueues deliveries; sending happens on the workers."""


def event_recorded(event) -> None:
    pass
