"""The site probe of --live against real HTTP and HTTPS servers on loopback (a test CA, real handshakes)."""

from __future__ import annotations

import datetime
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.checker.live_probe import probe_site

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")]

DOMAIN = "demo.test"
HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def make_cert(folder: Path, days: int) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Site(http.server.BaseHTTPRequestHandler):
    """A tiny app behind a proxy: health, a cookie on /, the Werkzeug console when `debug` is set."""

    debug = False
    redirect = False

    def do_GET(self) -> None:
        if self.redirect:
            self.send_response(301)
            self.send_header("Location", f"https://{DOMAIN}{self.path}")
            self.end_headers()
            return
        status, body = 404, b"not found"
        if self.path == "/health":
            status, body = 200, b'{"status": "ok"}'
        elif self.path == "/":
            status, body = 200, b"<h1>notes</h1>"
        elif self.path == "/console" and self.debug:
            status, body = 200, b"<title>Console // Werkzeug Debugger</title>"
        self.send_response(status)
        for key, value in HEADERS.items():
            self.send_header(key, value)
        if self.path == "/":
            self.send_header("Set-Cookie", "session=abc; Secure; HttpOnly; Path=/; SameSite=Lax")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Servers:
    http_port: int
    https_port: int
    ca: Path


def serve(handler: type[Site], context: ssl.SSLContext | None) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def servers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Servers]:
    days, debug, legacy = getattr(request, "param", (90, False, False))
    cert, key = make_cert(tmp_path, days)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if legacy:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
    handler = type("H", (Site,), {"debug": debug})
    redirecting = type("R", (Site,), {"redirect": True})
    plain, http_port = serve(redirecting, None)
    secure, https_port = serve(handler, context)
    yield Servers(http_port, https_port, cert)
    for server in (plain, secure):
        server.shutdown()
        server.server_close()


def probe(s: Servers, ca: Path | None = None):  # type: ignore[no-untyped-def]
    return probe_site(
        "127.0.0.1",
        DOMAIN,
        tls=True,
        health="/health",
        ca_bundle=str(ca or s.ca),
        http_port=s.http_port,
        https_port=s.https_port,
        timeout=5,
    )


def test_probe_reads_redirect_headers_cookies_health_and_certificate(servers: Servers) -> None:
    site = probe(servers)
    assert site.errors == ()
    assert site.http_root is not None and site.http_root.status == 301
    assert site.http_root.header("location") == f"https://{DOMAIN}/"
    assert site.root is not None and site.root.header("x-frame-options") == "DENY"
    assert site.root.all("set-cookie") == ["session=abc; Secure; HttpOnly; Path=/; SameSite=Lax"]
    assert site.health is not None and site.health.status == 200
    assert site.console is not None and site.console.status == 404
    assert site.tls_version in ("TLSv1.2", "TLSv1.3")
    assert site.cert_days_left in (88, 89)
    assert site.old_protocols == ()
    assert site.weak_ciphers is False
    assert site.root.header("server") is not None and "BaseHTTP" in site.root.header(
        "server"
    )  # version disclosed


@pytest.mark.parametrize("servers", [(5, True, False)], indirect=True)
def test_probe_sees_a_short_certificate_and_the_debugger(servers: Servers) -> None:
    site = probe(servers)
    assert site.cert_days_left in (3, 4)
    assert site.console is not None and "Werkzeug" in site.console.body


def test_probe_reports_a_certificate_that_does_not_verify(servers: Servers, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = make_cert(other, 90)
    site = probe(servers, other_ca)
    assert any(
        e.startswith("TLS handshake with demo.test via 127.0.0.1:") and "CERTIFICATE_VERIFY_FAILED" in e
        for e in site.errors
    )
    assert site.root is None


def _tls1_client_possible() -> bool:
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        return True
    except (ValueError, ssl.SSLError):
        return False


@pytest.mark.parametrize("servers", [(90, False, True)], indirect=True)
def test_probe_sees_legacy_protocols(servers: Servers) -> None:
    if not _tls1_client_possible():
        pytest.skip("this OpenSSL cannot speak TLS 1.0 at all")
    site = probe(servers)
    assert "TLSv1" in site.old_protocols or site.weak_ciphers


def test_probe_of_a_closed_port_names_the_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    site = probe_site("127.0.0.1", DOMAIN, tls=False, health="/health", http_port=port, timeout=2)
    assert site.health is None
    assert any("Connection refused" in e for e in site.errors)
