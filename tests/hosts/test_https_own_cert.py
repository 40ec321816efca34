"""HTTPS with the user's own certificate (tls: {cert, key}) on a sandbox host: uploaded, key 0600, served."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
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
