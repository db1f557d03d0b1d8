"""Everything one machine needs, in one command: migrate, the default project and an admin
login, the embedded Redis when REDIS_URL is unset, the web server, one worker and a skill host.
A worker that dies is started again (after a pause that grows while it keeps dying);
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

from aicenter import running
from core.embedded_redis import start_unless_running
from core.embedded_redis import stop as stop_redis
from core.models import Membership, Project
from sandbox.bubblewrap import bubblewrap
from sandbox.sandbox import refusal, status

# A worker that dies is started again after 1 s, then 2, 4 … up to a minute while it keeps
# dying soon after each start; one that ran a minute before dying starts over at 1 s.
FIRST_RESTART_DELAY = 1
LONGEST_RESTART_DELAY = 60
STABLE_SECONDS = 60
# How often this command looks whether the web server or a worker died (a restart is that late).
CHECK_SECONDS = 0.2
# Ctrl-C: the web server and the workers get SIGTERM, then SIGKILL if still there this much
# later (together): time for a worker to end its run's processes and unregister.
STOP_SECONDS = 10
# Past the deadline, a process still gets this long to answer SIGTERM before SIGKILL.
LAST_WAIT_SECONDS = 0.1


class WorkerProcess:
    """One pipelines worker of this command, restarted with backoff when it dies."""

    def __init__(self, number, command, *, name="Worker"):
        self.number, self.command, self.name = number, command, name
        self.delay = FIRST_RESTART_DELAY
        self.restart_at = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(self.command)
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self, say):
        """Start it again if it died and its pause is over; say what happens."""
        if self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return
            if time.monotonic() - self.started_at >= STABLE_SECONDS:
                self.delay = FIRST_RESTART_DELAY
            how = (
                f"was killed by {signal.Signals(-code).name}"
                if code < 0 and -code in signal.valid_signals()
                else f"exited with code {code}"
            )
            say(
                f"{self.name} {self.number} (pid {self.process.pid}) {how}; "
                f"restarting it in {self.delay} s."
            )
            self.restart_at = time.monotonic() + self.delay
            self.delay = min(self.delay * 2, LONGEST_RESTART_DELAY)
        elif time.monotonic() >= self.restart_at:
            self.start()
            say(f"{self.name} {self.number} restarted (pid {self.process.pid}).")

    def stop(self):
        if self.restart_at is None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, deadline):
        try:
            self.process.wait(timeout=max(LAST_WAIT_SECONDS, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


WEB_THREADS = 8  # requests served at once; pages answer in milliseconds


class Command(BaseCommand):
    help = (
        "Set up and start AI Center: web server, one pipelines worker and a skill host "
        "(Ctrl-C stops all)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("AICENTER_ADDR", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("AICENTER_PORT", "8000"))
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, addr, port, workers, **options):
        url = f"http://{'localhost' if addr in ('127.0.0.1', '0.0.0.0') else addr}:{port}/"
        # Refused in one line, before anything is touched: a second start on this data dir
        # (whose Ctrl-C would stop what the first one serves from), or a port another
        # program holds (waitress would die with a traceback).
        try:
            self._lock = running.hold(settings.DATA_DIR, url)
        except running.AlreadyRunning as already:
            self._refuse(str(already))
        if not str(port).isdigit() or not 0 < int(port) < 65536:
            self._refuse(f"--port must be a number from 1 to 65535, not '{port}'.")
        if problem := running.port_refusal(addr, int(port)):
            self._refuse(problem)
        started_redis = False
        try:
            if settings.EMBEDDED_REDIS:
                started_redis = start_unless_running(settings.DATA_DIR)
            self._start(addr, port, workers, url, started_redis)
        finally:
            # Also after a failed migrate or a Ctrl-C before the children ran: the embedded
            # redis-server is a daemon and would outlive us. One that was running before this
            # start may serve others (a worker started by hand, a test session): left alone.
            if started_redis:
                stop_redis(settings.DATA_DIR)
            self.stdout.write("Stopped.")
            self.stdout.flush()

    def _start(self, addr, port, workers, url, started_redis):
        if problem := refusal():  # the worker would refuse too: say it once, up front
            raise CommandError(problem)
        call_command("migrate", interactive=False, verbosity=0)
        username, password = self._ensure_admin()
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # a production WSGI server, not Django's development server (whitenoise serves the
        # static files either way)
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                f"--listen={addr}:{port}",
                f"--threads={WEB_THREADS}",
                "aicenter.wsgi:application",
            ],
            cwd=settings.BASE_DIR,
        )
        worker_processes = [
            WorkerProcess(number, [*manage, "rqworker", "pipelines", "--with-scheduler"])
            for number in range(1, workers + 1)
        ]
        worker_processes.append(WorkerProcess(1, [*manage, "skillhost"], name="Skill host"))
        redis = settings.REDIS_URL
        if settings.EMBEDDED_REDIS:
            redis = f"embedded, {redis}" + ("" if started_redis else " (was running; left so)")
        self.stdout.write(
            self.style.SUCCESS(f"\nAI Center is starting at {url}\n")
            + f"  Log in as '{username}' with password '{password}'\n"
            + f"  Data: {settings.DATA_DIR}\n"
            + f"  Redis: {redis}\n"
            + (
                f"  Package code: sandboxed ({bubblewrap()}: {bubblewrap().path})\n"
                if status().enabled
                else "  Package code: NOT sandboxed (AICENTER_SANDBOX=off)\n"
            )
            + "  Press Ctrl-C to stop the web server, the worker, the skill host"
            + (" and the embedded Redis.\n" if started_redis else ".\n")
        )
        # stdout is a pipe under a supervisor or `docker logs`: the login must show right away
        self.stdout.flush()
        self._wait(web, worker_processes)

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

    def _refuse(self, text):
        """One line on stderr and exit 1: no traceback, no "CommandError:" to decode."""
        self.stderr.write(text)
        self.stderr.flush()
        sys.exit(1)

    def _say(self, text):
        self.stdout.write(text)
        self.stdout.flush()

    def _wait(self, web, workers):
        """Until Ctrl-C (or SIGTERM), or the web server exits (say, its port is taken): dead
        workers are started again meanwhile."""
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and web.poll() is None:
                for worker in workers:
                    if stopping:  # a Ctrl-C stops workers too: not a death to restart
                        break
                    worker.check(self._say)
                time.sleep(CHECK_SECONDS)
            if not stopping:
                self._say(f"The web server exited with code {web.returncode}.")
        finally:
            self._say("\nStopping…")
            if web.poll() is None:
                web.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.stop()
            deadline = time.monotonic() + STOP_SECONDS
            for worker in workers:
                worker.wait(deadline)
            try:
                web.wait(timeout=max(LAST_WAIT_SECONDS, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                web.kill()
                web.wait()
