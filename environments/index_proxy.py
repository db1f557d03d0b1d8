"""A build's only way out: the worker's proxy to the package index, and nothing else.

An environment build has no network of its own (its sandbox's network namespace has loopback
only). Its installer reaches the package index through a relay of ours inside the sandbox
(environments/index_relay.py: 127.0.0.1 there, handed to the installer as HTTP_PROXY/HTTPS_PROXY)
that carries each connection over a unix socket, bind-mounted into the sandbox, to this proxy
in the worker. The proxy lets a connection through only to the hosts of the index the operator
configured with the installers' own variables (UV_DEFAULT_INDEX, UV_INDEX_URL, UV_INDEX,
UV_EXTRA_INDEX_URL, UV_FIND_LINKS; PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS for pip;
pypi.org and files.pythonhosted.org when no index is set) and refuses the rest, naming it. The
operator's own proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) is used by this proxy, never seen by
the build.

So package code that runs during a build (a source build's setup.py, when allowed) reaches
neither this machine's Redis, PostgreSQL or web server nor anything on the internet but the
index. HTTPS goes through as CONNECT tunnels (the installer checks the index's certificate
itself); plain-HTTP index URLs as forwarded requests, one per connection.
"""

import base64
import os
import re
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from contextlib import suppress
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

PYPI = {("pypi.org", 443), ("files.pythonhosted.org", 443)}
HEAD_MAX_BYTES = 64 * 1024
# Reading a request's head from the installer, and connecting upstream: never this long unless
# something is wrong, and then the installer gets an error rather than a hang.
CONNECT_TIMEOUT_SECONDS = 30
CHUNK = 256 * 1024
NOT_IN_A_HOST = re.compile(r"[^A-Za-z0-9.:_\-\[\]]")


def _words(environ, name: str) -> list[str]:
    return environ.get(name, "").replace(",", " ").split()


def index_urls(environ, *, uv: bool) -> list[str]:
    """The index URLs the operator gave the installer in use (PyPI's when none)."""
    if uv:
        default = environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL")
        extra = [
            url.split("=", 1)[-1] if "=" in url.split("://", 1)[0] else url
            for url in _words(environ, "UV_INDEX")
        ]
        extra += _words(environ, "UV_EXTRA_INDEX_URL") + _words(environ, "UV_FIND_LINKS")
    else:
        default = environ.get("PIP_INDEX_URL")
        extra = _words(environ, "PIP_EXTRA_INDEX_URL") + _words(environ, "PIP_FIND_LINKS")
    return ([default] if default else ["https://pypi.org/simple"]) + extra


def hosts_of(urls) -> set[tuple[str, int]]:
    """(host, port) of each http(s) URL; local paths and file: URLs name no host."""
    hosts = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                continue
            hosts.add((parts.hostname.lower().rstrip("."), port))
    return hosts


def index_hosts(environ, *, uv: bool, more=()) -> set[tuple[str, int]]:
    hosts = hosts_of(index_urls(environ, uv=uv)) | hosts_of(more)
    if ("pypi.org", 443) in hosts:
        hosts |= PYPI  # PyPI's pages link to its files' host
    return hosts


class IndexProxy:
    """The proxy of one build, a context manager: a unix socket (`path`) in a folder of its own
    (`folder`, bind-mounted into the build's sandbox), served by threads of the worker until
    stop(). `refused` lists the "host:port"s it turned away."""

    def __init__(self, allowed: set[tuple[str, int]]):
        self.allowed = allowed
        self.refused: list[str] = []
        self.upstream = getproxies_environment()  # the operator's proxy, if any
        self.folder = tempfile.mkdtemp(prefix="aicenter-index-")
        os.chmod(self.folder, 0o755)  # the build's uid connects to the socket in it
        self.path = os.path.join(self.folder, "index.sock")
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingUnixStreamServer(self.path, self._handler())
        self.server.daemon_threads = True
        os.chmod(self.path, 0o666)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy.serve(self.request)

        return Handler

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> None:
        """Stop serving (the socket goes); connections still open are cut."""
        if self.thread is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread = None
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        with self.lock:
            for connection in self.connections:
                with suppress(OSError):
                    connection.close()

    def serve(self, client: socket.socket) -> None:
        """One connection of the installer: a CONNECT to an index host, or a plain-HTTP request
        for an index URL; anything else is answered 403."""
        client.settimeout(CONNECT_TIMEOUT_SECONDS)
        try:
            head, rest = _read_head(client)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except (OSError, ValueError, UnicodeDecodeError):
            return
        tunnel = method == "CONNECT"
        try:
            parts = urlsplit(f"//{target}" if tunnel else target)
            host = (parts.hostname or "").lower().rstrip(".")
            port = parts.port or (443 if tunnel or parts.scheme == "https" else 80)
            plain_http = parts.scheme == "http"
        except ValueError:
            host, port, plain_http = "", 0, False
        if (host, port) not in self.allowed or not (tunnel or plain_http):
            self._refuse(client, f"{host}:{port}" if host else target)
            return
        try:
            upstream, authorization = self._connect(host, port, tunnel=tunnel)
        except (OSError, ValueError) as error:
            _answer(client, 502, f"could not reach {host}:{port}: {error}")
            return
        try:
            if tunnel:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(_forwarded(head, authorization))
            if rest:
                upstream.sendall(rest)
        except OSError:
            upstream.close()
            return
        self._splice(client, upstream)

    def _refuse(self, client, target: str) -> None:
        target = NOT_IN_A_HOST.sub("?", target)[:100]  # it goes into the build's log
        with self.lock:
            if target not in self.refused and len(self.refused) < 20:
                self.refused.append(target)
        _answer(client, 403, f"{target} is not the package index: AI Center refused it")

    def _connect(self, host: str, port: int, *, tunnel: bool):
        """A connection to host:port, through the operator's proxy where one applies, and the
        Proxy-Authorization header for that proxy (None when direct). For a tunnel through a
        proxy the CONNECT is made here: what comes back is the tunnel."""
        proxy = self.upstream.get("https" if tunnel else "http")
        if proxy and proxy_bypass_environment(host, self.upstream):
            proxy = None
        if not proxy:
            upstream = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS)
            return self._track(upstream), None
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        upstream = socket.create_connection(
            (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
        if parts.scheme == "https":
            upstream = ssl.create_default_context().wrap_socket(
                upstream, server_hostname=parts.hostname
            )
        authorization = _authorization(parts)
        self._track(upstream)
        if tunnel:
            upstream.sendall(
                f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"{authorization}\r\n".encode()
            )
            answer, _ = _read_head(upstream)
            if answer.split(b" ", 2)[1:2] != [b"200"]:
                raise OSError(f"the proxy {parts.hostname} answered {answer[:80]!r}")
        return upstream, authorization

    def _track(self, connection: socket.socket) -> socket.socket:
        with self.lock:
            self.connections.add(connection)
        return connection

    def _splice(self, client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways until both sides are done."""
        self._track(client)
        client.settimeout(None)
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self.lock:
            self.connections.discard(client)
            self.connections.discard(upstream)
        upstream.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _forwarded(head: bytes, authorization: str | None) -> bytes:
    """A plain-HTTP request as the index (or the operator's proxy, when `authorization` is not
    None) should get it: the installer's proxy headers dropped, one request per connection."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    if authorization is None:  # to the index itself: the path, not the whole URL
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = [
        line
        for line in lines[1:]
        if line and not line.lower().startswith(("proxy-", "connection:", "keep-alive:"))
    ]
    text = f"{method} {target} {version}\r\n" + "".join(f"{line}\r\n" for line in kept)
    return (text + (authorization or "") + "Connection: close\r\n\r\n").encode("latin-1")


def _read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP message's head (up to the blank line) and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_MAX_BYTES:
            raise ValueError("request head too long")
        chunk = connection.recv(8192)
        if not chunk:
            raise ValueError("connection closed before the head ended")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _authorization(parts) -> str:
    """The Proxy-Authorization header line (with its CRLF) for a proxy URL's credentials."""
    if not parts.username:
        return ""
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return f"Proxy-Authorization: Basic {base64.b64encode(credentials.encode()).decode()}\r\n"


def _answer(client: socket.socket, status: int, text: str) -> None:
    reason = {403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (text + "\n").encode()
    with suppress(OSError):
        client.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
    with suppress(OSError):
        client.close()
