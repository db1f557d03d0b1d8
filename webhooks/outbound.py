"""The webhooks' HTTP: which URLs may be called (SSRF), and one POST to the address that was
checked.

A webhook URL is chosen by a Project admin but called from the workers, inside the network
the workers sit in: without checks it would let a project admin reach the database, Redis,
the cloud's metadata service or anything else on that network. So a URL must be http(s) and
every address its host resolves to must be public, at creation and again at each delivery.
At delivery the host is resolved once and the connection goes to the address that was
checked (not resolved again by the HTTP library), so a DNS answer that changes between the
check and the connection (DNS rebinding) can't send it elsewhere. Redirects are never
followed: a public receiver could otherwise redirect to a private one.
AICENTER_WEBHOOKS_ALLOW_LOCAL=true allows private addresses (tests, single-machine installs).
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

SNIPPET_CHARS = 200  # of a receiver's answer, kept to tell why it refused
USER_AGENT = "AICenter-Webhooks/1"
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address) -> bool:
    """Not loopback, private, link-local, multicast, reserved, unspecified or otherwise not
    globally routed (shared 100.64/10, documentation ranges, …), in IPv4 or IPv6. An IPv6
    address carrying an IPv4 one (::ffff:10.0.0.1, NAT64, 6to4, Teredo) is judged by where
    the packets really go, the IPv4 address, too."""
    if address.version == 6:
        if address.ipv4_mapped:
            return is_public(address.ipv4_mapped)
        if address in NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        inner = address.sixtofour or (address.teredo and address.teredo[1])
        if inner and not is_public(inner):
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass
class Target:
    scheme: str
    host: str  # as written in the URL (the Host header, and TLS's server name)
    port: int
    path: str  # with its query
    address: str  # the checked IP address the connection goes to


def _parts(url: str):
    """(scheme, host, port, path) of a webhook URL, or a ValidationError saying what's wrong."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("A URL is required, e.g. https://example.com/hooks/aicenter.")
    if len(url) > 2000:
        raise ValidationError("The URL is too long: 2,000 characters at most.")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url.strip()):
        raise ValidationError("The URL can't contain spaces or control characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ValidationError(f"This is not a valid URL ({error}).") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with https:// or http://.")
    if not parts.hostname:
        raise ValidationError("The URL has no host name, e.g. https://example.com/hook.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "The URL can't carry a user name or password: use the secret to authenticate "
            "deliveries (X-AICenter-Signature)."
        )
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def resolve(url: str) -> Target:
    """Check `url` and resolve its host once: a ValidationError (its message is for a person)
    unless every address of the host is public (or AICENTER_WEBHOOKS_ALLOW_LOCAL is on)."""
    scheme, host, port, path = _parts(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(f"The host name '{host}' could not be resolved.") from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValidationError(f"The host name '{host}' could not be resolved.")
    if not settings.WEBHOOKS_ALLOW_LOCAL:
        for address in addresses:
            if not is_public(address):
                raise ValidationError(
                    f"'{host}' resolves to {address}, a loopback, private, link-local or "
                    "otherwise non-public address: webhooks only call public addresses "
                    "(an administrator can allow local ones with "
                    "AICENTER_WEBHOOKS_ALLOW_LOCAL=true)."
                )
    return Target(scheme, host, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says now."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the URL's host name."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self.address = target.address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Answer:
    status_code: int | None
    error: str
    snippet: str
    duration_ms: int


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to `url` (checked again now) with a timeout, no redirects followed. Never
    raises: what went wrong is in the answer's `error`."""
    started = time.monotonic()

    def answer(status_code=None, error="", snippet=""):
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(status_code, error[:500], snippet[:SNIPPET_CHARS], elapsed)

    try:
        target = resolve(url)
    except ValidationError as error:
        return answer(error=" ".join(error.messages))
    opener = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = opener(target, timeout=settings.WEBHOOKS_TIMEOUT_SECONDS)
    try:
        connection.request(
            "POST", target.path, body=body, headers={**headers, "User-Agent": USER_AGENT}
        )
        response = connection.getresponse()
        snippet = response.read(SNIPPET_CHARS).decode("utf-8", "replace")
        return answer(response.status, "", snippet)
    except TimeoutError:
        return answer(error=f"No answer within {settings.WEBHOOKS_TIMEOUT_SECONDS:g} s.")
    except ssl.SSLError as error:
        return answer(error=f"TLS error: {error.reason or error}")
    except (OSError, ValueError, http.client.HTTPException) as error:
        return answer(error=f"{type(error).__name__}: {error}")
    finally:
        connection.close()
