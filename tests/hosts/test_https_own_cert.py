"""HTTPS with the user's own certificate (tls: {cert, key}) on a sandbox host: uploaded, key 0600, served."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import private_sandbox

from . import https_graders as graders

pytestmark = pytest.mark.hosts

REPO = Path(__file__).resolve().parents[2]
NAME = "own.flaskr.test"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(
        tmp_path_factory, "own-cert-sandbox", 1, progress=lambda m: print(f"[sandbox] {m}")
    ) as sandbox:
        yield sandbox


def self_signed(directory: Path, days: int = 90) -> tuple[Path, Path]:
    """A self-signed certificate for NAME made with openssl, as a user might bring their own."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            str(days),
            "-subj",
            f"/CN={NAME}",
            "-addext",
            f"subjectAltName=DNS:{NAME}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_own_certificate_is_uploaded_with_a_0600_key_and_served(box: Sandbox, tmp_path: Path) -> None:
    host = box.hosts()[0]
    certs = tmp_path / "certs"
    certs.mkdir()
    cert, key = self_signed(certs)
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: own, wsgi: 'own:app'}\n"
        f"server:\n  domains: [{NAME}]\n  user: own\n"
        "  tls: {cert: certs/fullchain.pem, key: certs/privkey.pem}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "DEPLOY_SANDBOX_DIR": str(box.state_dir), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "certs", "-e", "sandbox"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "uploading your certificate and key (key mode 0600)" in out.stdout
    assert "PRIVATE KEY" not in out.stdout + out.stderr
    key_text = key.read_text()
    assert key_text.splitlines()[1] not in out.stdout + out.stderr

    stat = subprocess.run(
        host.ssh_argv(["stat", "-c", "%a %U %G", "/etc/own/tls/privkey.pem", "/etc/own/tls/fullchain.pem"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert stat == ["600 root root", "644 root root"]

    served = graders.served_certificate(NAME, host.address, cert)  # verifies against the uploaded cert
    assert served == ssl.PEM_cert_to_DER_cert(cert.read_text())

    # Plain HTTP moves to HTTPS.
    connection = http.client.HTTPConnection(host.address, 80, timeout=10)
    try:
        connection.request("GET", "/anything", headers={"Host": NAME})
        response = connection.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://{NAME}/anything"
    finally:
        connection.close()


def test_a_rejected_change_puts_the_previous_certificate_and_key_back(box: Sandbox, tmp_path: Path) -> None:
    """A new pair uploaded with a site Nginx rejects: the site, the certificate and the key all come back
    as they were, so the next Nginx restart serves what was served before; a good change then goes in."""
    host = box.hosts()[0]
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: own, wsgi: 'own:app'}\n"
        f"server:\n  domains: [{NAME}]\n  user: own\n"
        "  tls: {cert: old/fullchain.pem, key: old/privkey.pem}\n",
        encoding="utf-8",
    )
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_cert, old_key = self_signed(tmp_path / "old")
    new_cert, _ = self_signed(tmp_path / "new")
    env = {**os.environ, "DEPLOY_SANDBOX_DIR": str(box.state_dir), "PYTHONPATH": str(REPO)}

    def certs() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "deploy", "certs", "-e", "sandbox"]
        return subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env, check=False
        )

    def on_host() -> list[str]:
        files = ["/etc/own/tls/fullchain.pem", "/etc/own/tls/privkey.pem"]
        argv = host.ssh_argv(["sh", "-c", 'sha256sum "$@" && stat -c "%a %U %G" "$@"', "sums", *files])
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split("\n")

    def digests(*files: Path) -> list[str]:
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]

    assert certs().returncode == 0
    before = on_host()
    assert [line.split()[0] for line in before[:2]] == digests(old_cert, old_key)
    # The new pair, and a site Nginx rejects (an override of one of its templates).
    config = tmp_path / "deploy.yaml"
    config.write_text(config.read_text().replace("old/", "new/"), encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "nginx-security-headers.conf.j2").write_text("not_a_directive on;\n")
    failed = certs()
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert "the previous Nginx files are back in place" in failed.stdout + failed.stderr
    assert on_host() == before
    listing = box.run(host, ["ls", "-A", "/etc/own/tls"], check=True).stdout.split()
    assert listing == ["fullchain.pem", "privkey.pem"]  # nothing staged is left behind
    box.run(host, ["systemctl", "restart", "nginx"], check=True)
    assert graders.served_certificate(NAME, host.address, old_cert) == ssl.PEM_cert_to_DER_cert(
        old_cert.read_text()
    )
    (tmp_path / "templates" / "nginx-security-headers.conf.j2").unlink()
    assert certs().returncode == 0
    # A reload returns before Nginx's old workers are gone: they may still answer for a moment.
    wanted, deadline = ssl.PEM_cert_to_DER_cert(new_cert.read_text()), time.monotonic() + 15
    while not _serves(host.address, new_cert, wanted) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _serves(host.address, new_cert, wanted)
    assert on_host()[2:4] == ["644 root root", "600 root root"]


def _serves(address: str, cert: Path, wanted: bytes) -> bool:
    try:
        return graders.served_certificate(NAME, address, cert) == wanted
    except ssl.SSLError:
        return False


def test_tls_false_gets_no_certificate(box: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: internal, wsgi: 'internal:app'}\nserver: {domains: [internal.test], tls: false}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "DEPLOY_SANDBOX_DIR": str(box.state_dir), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "certs", "-e", "sandbox"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "tls is false" in out.stdout
    host = box.hosts()[0]
    untouched = subprocess.run(
        host.ssh_argv(
            ["test", "!", "-e", "/etc/internal", "-a", "!", "-e", "/etc/nginx/sites-enabled/internal.conf"]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert untouched.returncode == 0, "deploy certs changed the host of a tls: false app"


def test_check_live_warns_weeks_before_the_certificate_expires(box: Sandbox, tmp_path: Path) -> None:
    """A certificate with 10 days left is served; `deploy check --live` reports it (LIVE016)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    self_signed(certs, days=10)
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: own, wsgi: 'own:app'}\n"
        f"server:\n  domains: [{NAME}]\n  user: own\n"
        # ca_bundle: what `deploy check --live` verifies the site with (here: the self-signed cert).
        "  tls: {cert: certs/fullchain.pem, key: certs/privkey.pem, ca_bundle: certs/fullchain.pem}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "DEPLOY_SANDBOX_DIR": str(box.state_dir), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "certs", "-e", "sandbox"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid for 9 more days" in out.stdout
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy",
            "check",
            "--live",
            "-e",
            "sandbox",
            "--select",
            "LIVE016",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    report = json.loads(out.stdout)
    messages = [f["message"] for f in report["findings"] if f["id"] == "LIVE016"]
    assert out.returncode == 1, out.stdout + out.stderr
    assert messages == ["the certificate expires in 9 days"], report
