"""RQ entry points: load by id and hand over. Nothing else."""

from webhooks.delivery import delivery_attempt
from webhooks.mail import run_mail_send


def deliver(delivery_id: int) -> None:
    delivery_attempt(delivery_id)


def mail_run_end(run_id: int) -> None:
    run_mail_send(run_id)
