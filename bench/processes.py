"""The servers bench/skills_bench.py starts: each in its own process group, logging to a file,
waited for until it answers HTTP, and stopped at the end."""

import http.client
import os
import signal
import subprocess
import time
from contextlib import closing


def wait_http(port, seconds, process, what, log):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}: see {log}")
        try:
            with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=2)) as probe:
                probe.request("GET", "/")
                probe.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer within {seconds} s: see {log}")


class Processes:
    """Processes started in their own process group, each logging to a file of the folder
    `logs`; all stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, logs):
        self.logs = logs
        self.started = []

    def start(self, name, command, **kwargs):
        log_path = self.logs / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,
            )
        process.log_path = log_path
        self.started.append(process)
        return process

    def stop(self, process, grace=15):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self):
        for process in reversed(list(self.started)):
            self.stop(process)
