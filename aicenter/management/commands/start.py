"""Everything one machine needs, in one command: migrate, the default project and an admin
login, the embedded Redis when REDIS_URL is unset, the web server and one worker.
Ctrl-C stops them all."""

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from aicenter.models import Membership, Project


class Command(BaseCommand):
    help = "Set up and start AI Center: web server and one pipelines worker (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("AICENTER_ADDR", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("AICENTER_PORT", "8000"))
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, addr, port, workers, **options):
        try:
            self._start(addr, port, workers)
        finally:
            # Also after a failed migrate or a Ctrl-C before the children ran: the embedded
            # redis-server is a daemon and would outlive us.
            if settings.EMBEDDED_REDIS:
                from aicenter.embedded_redis import stop as stop_redis

                stop_redis(settings.DATA_DIR)
            self.stdout.write("Stopped.")
            self.stdout.flush()

    def _start(self, addr, port, workers):
        from pipelines.sandbox import refusal, status

        if problem := refusal():  # the worker would refuse too: say it once, up front
            raise CommandError(problem)
        call_command("migrate", interactive=False, verbosity=0)
        username, password = self._ensure_admin()
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = [
            subprocess.Popen([*manage, "runserver", f"{addr}:{port}", "--noreload"]),
            *(
                subprocess.Popen([*manage, "rqworker", "pipelines", "--with-scheduler"])
                for _ in range(workers)
            ),
        ]
        url = f"http://{'localhost' if addr in ('127.0.0.1', '0.0.0.0') else addr}:{port}/"
        self.stdout.write(
            self.style.SUCCESS(f"\nAI Center is starting at {url}\n")
            + f"  Log in as '{username}' with password '{password}'\n"
            + f"  Data: {settings.DATA_DIR}\n"
            + f"  Redis: {'embedded, ' if settings.EMBEDDED_REDIS else ''}{settings.REDIS_URL}\n"
            + (
                "  Package code: sandboxed (bubblewrap)\n"
                if status().enabled
                else "  Package code: NOT sandboxed (AICENTER_SANDBOX=off)\n"
            )
            + "  Press Ctrl-C to stop the web server, the worker"
            + (" and the embedded Redis.\n" if settings.EMBEDDED_REDIS else ".\n")
        )
        # stdout is a pipe under a supervisor or `docker logs`: the login must show right away
        self.stdout.flush()
        self._wait(children)

    def _ensure_admin(self):
        """The admin login: created once, its password kept in the data dir so every start can
        say how to log in (AICENTER_ADMIN_PASSWORD sets it on first start)."""
        username = os.environ.get("AICENTER_ADMIN_USERNAME", "admin")
        password_file = settings.DATA_DIR / "admin-password.txt"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = os.environ.get("AICENTER_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
            user = User.objects.create_superuser(username=username, email="", password=password)
            password_file.write_text(password)
            password_file.chmod(0o600)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = "(unchanged; reset it with: python manage.py changepassword admin)"
        default = Project.objects.get(slug="default")
        Membership.objects.get_or_create(
            project=default, user=user, defaults={"role": Membership.ADMIN}
        )
        return username, password

    def _wait(self, children):
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.2)
        finally:
            self.stdout.write("\nStopping…")
            self.stdout.flush()
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
