"""https receivers: the connection goes to the checked address while the certificate is
checked against the URL's host name (as a browser would), and an untrusted certificate is a
failed attempt, never a delivery."""

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.webhooks.conftest import resolving_to
from webhooks.outbound import post


def _certificate(host_name, folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem.decode()


@pytest.fixture
def tls_receiver(tmp_path_factory):
    """An https server on 127.0.0.1 with a certificate for hooks.example.test, and the PEM."""
    folder = tmp_path_factory.mktemp("tls")
    pem = _certificate("hooks.example.test", folder)
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.headers["Host"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], pem, got
    server.shutdown()
    server.server_close()


def _trusting(monkeypatch, pem):
    """Our certificate among the trusted ones (as a real CA's would be)."""
    real = ssl.create_default_context
    monkeypatch.setattr("webhooks.outbound.ssl.create_default_context", lambda: real(cadata=pem))


def test_a_trusted_certificate_for_the_urls_host_is_delivered_to(tls_receiver, monkeypatch):
    port, pem, got = tls_receiver
    resolving_to(monkeypatch, "127.0.0.1")
    _trusting(monkeypatch, pem)
    answer = post(f"https://hooks.example.test:{port}/hook", b"{}", {"X-Test": "1"})
    assert (answer.status_code, answer.error) == (204, "")
    assert got == [(f"hooks.example.test:{port}", b"{}")]


def test_an_untrusted_certificate_is_a_failed_attempt(tls_receiver, monkeypatch):
    port, pem, got = tls_receiver
    resolving_to(monkeypatch, "127.0.0.1")
    answer = post(f"https://hooks.example.test:{port}/hook", b"{}", {})
    assert answer.status_code is None
    assert answer.error.startswith("TLS error: CERTIFICATE_VERIFY_FAILED")
    assert got == []


def test_a_certificate_of_another_host_is_a_failed_attempt(tls_receiver, monkeypatch):
    port, pem, got = tls_receiver
    resolving_to(monkeypatch, "127.0.0.1")
    _trusting(monkeypatch, pem)
    answer = post(f"https://other.example.test:{port}/hook", b"{}", {})
    assert answer.status_code is None and "TLS error" in answer.error
    assert got == []
