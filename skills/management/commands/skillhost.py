"""`python manage.py skillhost [--gpu]`: host ML Skill replicas on this machine until SIGTERM
or Ctrl-C. Start one per machine; more machines, more replicas."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from sandbox.bubblewrap import bubblewrap
from sandbox.sandbox import refusal, status
from skills.host import Host


class Command(BaseCommand):
    help = "Host ML Skill replicas on this machine (one per machine; --gpu on a GPU machine)."

    def add_arguments(self, parser):
        parser.add_argument("--gpu", action="store_true", help="host the skills that use a GPU")

    def handle(self, *args, gpu, **options):
        if problem := refusal():
            raise CommandError(problem)
        stop = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
        host = Host(gpu=gpu)
        sandboxed = f"sandboxed by {bubblewrap()}" if status().enabled else "NOT sandboxed"
        self.stdout.write(
            f"Skill host {host.name} started{' (GPU skills)' if gpu else ''}; package code "
            f"{sandboxed}."
        )
        self.stdout.flush()
        host.run(stop)
