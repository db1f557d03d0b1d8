"""A real HTTP receiver on loopback for the webhook tests, and helpers that make events the
way the services do (core.events.record)."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.events import record
from webhooks.services import webhook_create

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    """Records every POST; answers each with the next of `statuses` (the last one repeats)."""

    def __init__(self):
        self.requests = []
        self.statuses = [200]
        # check(headers, body) -> bool: a receiver that verifies deliveries answers 401 to
        # those that fail it
        self.check = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    n = len(receiver.requests)
                    status = receiver.statuses[min(n, len(receiver.statuses)) - 1]
                if receiver.check and not receiver.check(self.headers, body):
                    status = 401
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"x" * 5000 if status >= 500 else b"thanks")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?from=aicenter"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json(self, index=-1):
        return json.loads(self.requests[index]["body"])


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def make_webhook(project, user, url, events=("pipeline.finished",), **fields):
    return webhook_create(
        user=user, project=project, url=url, events=list(events), secret=SECRET, **fields
    )


def finished_event(project, run_id=42, status="successful"):
    return record(
        project=project,
        category="pipeline",
        action="finished",
        object_type="pipeline",
        object_key=run_id,
        object_name=f"Pipeline {run_id}",
        message=f"{status.title()}",
        data={"status": status, "reason": "", "duration_seconds": 1.5},
    )


def resolving_to(monkeypatch, *addresses):
    """The one thing these tests can't make for real: a host name that resolves to a given
    address (there is no DNS here and /etc/hosts is not ours). Each call answers the next of
    `addresses` (the last one repeats); the calls are counted."""
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        address = addresses[min(len(calls), len(addresses)) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
        return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

    monkeypatch.setattr("webhooks.outbound.socket.getaddrinfo", getaddrinfo)
    return calls
