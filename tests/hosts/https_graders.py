"""The public graders, run against a live sandbox site: sslyze (Mozilla's TLS guideline) and the MDN
HTTP Observatory scanner, plus an HTTPS load loop that counts failed requests.

The site's name resolves to a sandbox host only for the scanner's own process: it runs in a private
mount namespace with a temporary hosts file bound over /etc/hosts, so the machine's /etc/hosts is never
touched. Every request goes to a sandbox host address.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci, require_tools

OBSERVATORY_PACKAGE = "@mdn/mdn-http-observatory"
#: Where the scanner is installed once (npm install --ignore-scripts); $DEPLOY_OBSERVATORY_DIR overrides.
OBSERVATORY_DIR = Path(os.environ.get("DEPLOY_OBSERVATORY_DIR") or "/var/cache/deploy/observatory")


def require(*tools: str) -> None:
    require_tools(*tools)


# --- sslyze ------------------------------------------------------------------------------------


def sslyze_mozilla(name: str, address: str, ca_file: Path, port: int = 443) -> tuple[int, str]:
    """Run `sslyze --mozilla_config=intermediate` on name:port at address; (exit code, output)."""
    require("sslyze")
    result = subprocess.run(
        [
            "sslyze",
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={ca_file}",
            f"{name}:{port}{{{address}}}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


# --- MDN HTTP Observatory ----------------------------------------------------------------------


def observatory_install(directory: Path = OBSERVATORY_DIR, install_missing: bool = True) -> Path:
    """Install the scanner without its install scripts (they download data); return its package dir.
    With install_missing=False a scanner not installed yet is a failure (CI: .ci/setup installs it)."""
    require("node", "npm")
    package = directory / "node_modules" / "@mdn" / "mdn-http-observatory"
    if not (package / "src" / "scan.js").exists():
        if not install_missing:
            pytest.fail(f"the Observatory scanner is not in {directory}: run .ci/setup", pytrace=False)
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "package.json").exists():
            (directory / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        subprocess.run(
            ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", OBSERVATORY_PACKAGE],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=600,
        )
    # The install script would download the HSTS preload list; the scanner only needs the file.
    preload = package / "conf" / "hsts-preload.json"
    if not preload.exists():
        preload.write_text("{}\n", encoding="utf-8")
    return package


def observatory_scan(name: str, address: str, ca_file: Path) -> dict[str, Any]:
    """Scan https://name with the name resolving to `address` for the scanner only; the JSON result."""
    require("unshare", "node")
    package = observatory_install(install_missing=not in_ci())
    with tempfile.TemporaryDirectory() as scratch:
        hosts = Path(scratch) / "hosts"
        hosts.write_text(f"127.0.0.1\tlocalhost\n{address}\t{name}\n", encoding="utf-8")
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(ca_file)}
        # The package's bin wrapper overwrites NODE_EXTRA_CA_CERTS: run its scan.js directly.
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount --bind "$1" /etc/hosts && exec node "$2" "$3"',
                "scan",
                str(hosts),
                str(package / "src" / "scan.js"),
                name,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(
            f"the Observatory scanner printed no JSON:\n{result.stdout}\n{result.stderr}"
        ) from None
    if "error" in data:
        raise AssertionError(f"the Observatory scanner failed: {data['error']}\n{result.stderr}")
    return data


def observatory_summary(result: dict[str, Any]) -> str:
    """One line per test that cost or earned points, for messages and the docs."""
    scan = result["scan"]
    lines = [
        f"grade {scan['grade']}, score {scan['score']}, "
        f"tests passed {scan['testsPassed']}/{scan['testsQuantity']}"
    ]
    for test_name, test in sorted(result["tests"].items()):
        lines.append(f"  {test_name}: {test['result']} ({test['scoreModifier']:+d})")
    return "\n".join(lines)


# --- HTTPS requests and load -------------------------------------------------------------------


def tls_context(ca_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with SNI and certificate verification for `name`."""

    def __init__(self, name: str, address: str, context: ssl.SSLContext, timeout: float = 10):
        super().__init__(name, 443, context=context, timeout=timeout)
        self._address = address
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, 443), self.timeout)
        self.sock = self._tls_context.wrap_socket(raw, server_hostname=self.host)


def https_get(name: str, address: str, ca_file: Path, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    """GET https://name/path from `address`, verifying the certificate for `name`."""
    connection = _PinnedHTTPSConnection(name, address, tls_context(ca_file))
    try:
        connection.request("GET", path, headers={"Host": name})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def served_certificate(name: str, address: str, ca_file: Path) -> bytes:
    """The DER certificate the host serves for `name` (verified against `ca_file`)."""
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        tls_context(ca_file).wrap_socket(raw, server_hostname=name) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    #: DER certificates seen during the run (a renewal shows as a second one).
    certificates: set[bytes] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"{self.ok + self.failed} requests, {self.ok} ok, {self.failed} failed; "
            f"statuses {dict(sorted(self.statuses.items()))}; errors {self.errors}; "
            f"{len(self.certificates)} distinct certificate(s) served"
        )


class HttpsLoad:
    """Workers that each open a new TLS connection per request (a new handshake each time, so every
    request sees whichever certificate and Nginx workers are current) until stopped."""

    def __init__(
        self,
        name: str,
        address: str,
        ca_file: Path,
        path: str = "/",
        workers: int = 4,
        max_seconds: float = 120,
    ):
        self.name, self.address, self.path = name, address, path
        self.context = tls_context(ca_file)
        self.workers = workers
        self.deadline = time.monotonic() + max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _one(self) -> None:
        connection = _PinnedHTTPSConnection(self.name, self.address, self.context)
        try:
            connection.connect()
            certificate = connection.sock.getpeercert(binary_form=True) if connection.sock else None
            connection.request("GET", self.path, headers={"Host": self.name, "Connection": "close"})
            response = connection.getresponse()
            response.read()
            with self._lock:
                self.result.statuses[response.status] = self.result.statuses.get(response.status, 0) + 1
                if response.status < 500:
                    self.result.ok += 1
                else:
                    self.result.failed += 1
                if certificate:
                    self.result.certificates.add(certificate)
        except (OSError, http.client.HTTPException) as exc:
            with self._lock:
                self.result.failed += 1
                kind = type(exc).__name__
                self.result.errors[kind] = self.result.errors.get(kind, 0) + 1
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            self._one()

    def __enter__(self) -> HttpsLoad:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        """Block until at least `count` requests have finished."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self.result.ok + self.result.failed >= count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"load did not reach {count} requests in {timeout}s: {self.result.summary()}")
