"""The index proxy, a build's only way out (environments/index_proxy.py): which hosts the
operator's variables allow, what it lets through and what it refuses, and the operator's own
proxy behind it. The builds that go through it are in test_sandbox_builds.py."""

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from environments.index_proxy import PYPI, IndexProxy, index_hosts
from tests.package_index import wheel


def test_the_hosts_are_those_of_the_index_the_operator_configured():
    assert index_hosts({}, uv=True) == PYPI
    assert index_hosts({"UV_INDEX_URL": "https://pypi.internal:8443/simple"}, uv=True) == {
        ("pypi.internal", 8443)
    }
    environ = {
        "UV_DEFAULT_INDEX": "http://mirror.internal/simple",
        "UV_INDEX": "torch=https://download.pytorch.org/whl/cpu https://other.internal/simple",
        "UV_EXTRA_INDEX_URL": "https://user:secret@extra.internal/simple",
        "UV_FIND_LINKS": "/srv/wheels,https://wheels.internal/",
        "PIP_INDEX_URL": "https://pip-only.internal/simple",
    }
    assert index_hosts(environ, uv=True) == {
        ("mirror.internal", 80),
        ("download.pytorch.org", 443),
        ("other.internal", 443),
        ("extra.internal", 443),
        ("wheels.internal", 443),
    }
    assert index_hosts(environ, uv=False) == {("pip-only.internal", 443)}
    allowed_lines = index_hosts({}, uv=False, more=["https://github.com/org/repo"])
    assert allowed_lines == PYPI | {("github.com", 443)}


def ask(proxy, request: bytes) -> bytes:
    """Send `request` to the proxy's socket as the relay would; everything it answers."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(proxy.path)
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


@pytest.fixture
def index_with_a_wheel(package_index):
    name, data = wheel("aicenter-proxied", "1.0", {"p.py": ""})
    with package_index.serving("aicenter-proxied", (name, data)):
        parts = urlsplit(package_index.url)
        yield (parts.hostname, parts.port), f"{package_index.url}/aicenter-proxied/"


def test_it_lets_through_the_index_only(index_with_a_wheel):
    host, page = index_with_a_wheel
    with IndexProxy({host}) as proxy:
        request = f"GET {page} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
        answer = ask(proxy, request.encode())  # one request per connection all the same
        assert answer.startswith(b"HTTP/1.0 200") and b"aicenter_proxied-1.0" in answer
        for request in (
            "CONNECT 127.0.0.1:6379 HTTP/1.1\r\n\r\n",  # Redis
            "GET http://127.0.0.1:5432/ HTTP/1.1\r\n\r\n",  # PostgreSQL
            "CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
            f"GET https://{host[0]}:{host[1]}/ HTTP/1.1\r\n\r\n",  # only http as plain requests
        ):
            assert ask(proxy, request.encode()).startswith(b"HTTP/1.1 403 Forbidden"), request
        assert proxy.refused == [
            "127.0.0.1:6379",
            "127.0.0.1:5432",
            "evil.example:443",
            f"{host[0]}:{host[1]}",
        ]
    assert not os.path.exists(proxy.path) and not os.path.exists(proxy.folder)


def test_what_it_refused_is_named_harmlessly_in_the_log():
    with IndexProxy(set()) as proxy:
        answer = ask(proxy, b"CONNECT \x1b[2J[aicenter]\x07done:443 HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403")
    assert proxy.refused == ["?[2J[aicenter]?done:443"]  # no escape, no line of its own


class OperatorProxy:
    """The operator's own HTTP proxy: notes each request line, then forwards it (a plain
    request to its URL, a CONNECT as a tunnel)."""

    def __init__(self):
        self.seen = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                proxy.seen.append((self.requestline, self.headers.get("Proxy-Authorization")))
                parts = urlsplit(self.path)
                with socket.create_connection((parts.hostname, parts.port)) as upstream:
                    upstream.sendall(f"GET {parts.path} HTTP/1.0\r\n\r\n".encode())
                    answer = b""
                    while chunk := upstream.recv(65536):
                        answer += chunk
                self.wfile.write(answer)

            def do_CONNECT(self):
                proxy.seen.append((self.requestline, self.headers.get("Proxy-Authorization")))
                host, port = self.path.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                self.send_response(200)
                self.end_headers()
                data = self.connection.recv(65536)
                upstream.sendall(data)
                while chunk := upstream.recv(65536):
                    self.wfile.write(chunk)
                upstream.close()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://ops:s3cret@127.0.0.1:{self.server.server_address[1]}"


def test_it_goes_through_the_operators_proxy(index_with_a_wheel, monkeypatch):
    host, page = index_with_a_wheel
    operator = OperatorProxy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, operator.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        with IndexProxy({host}) as proxy:
            answer = ask(proxy, f"GET {page} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"aicenter_proxied-1.0" in answer
            tunnel = f"CONNECT {host[0]}:{host[1]} HTTP/1.1\r\n\r\n"
            path = urlsplit(page).path
            answer = ask(proxy, f"{tunnel}GET {path} HTTP/1.0\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 200 Connection established")
            assert b"aicenter_proxied-1.0" in answer
    finally:
        operator.server.shutdown()
    authorization = "Basic b3BzOnMzY3JldA=="  # ops:s3cret
    assert operator.seen == [
        (f"GET {page} HTTP/1.1", authorization),
        (f"CONNECT {host[0]}:{host[1]} HTTP/1.1", authorization),
    ]
