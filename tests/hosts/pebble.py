"""A real ACME server for host tests: Debian's pebble, with pebble-challtestsrv answering DNS for test names.

Pebble listens on the machine side of the first sandbox host's veth; every other host gets a /32 route
to that address through its own veth, so pebble binds to no other interface. Challenges are really
validated: pebble fetches http://NAME/.well-known/acme-challenge/TOKEN from whichever address
challtestsrv gives for NAME (`point`). Never PEBBLE_VA_ALWAYS_VALID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

API_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 8053
CHALLTESTSRV_MANAGEMENT_PORT = 8055
#: 90 days, as Let's Encrypt: graders flag lifespans over 366 days (pebble's default is 5 years).
VALIDITY_SECONDS = 7776000

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {sans}
"""


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_api_certificate(directory: Path, addresses: Sequence[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for pebble's API on `addresses`: (ca.pem, cert.pem, key.pem)."""
    sans = ",".join(f"IP:{a}" for a in (*addresses, "127.0.0.1"))
    (directory / "openssl.cnf").write_text(_OPENSSL_CONFIG.format(sans=sans), encoding="utf-8")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        "-new",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=deploy test: pebble API CA",
        "-config",
        "openssl.cnf",
        "-extensions",
        "ca",
        cwd=directory,
    )
    _openssl(
        "req",
        "-new",
        *ec,
        "-keyout",
        "key.pem",
        "-out",
        "api.csr",
        "-subj",
        "/CN=pebble",
        "-config",
        "openssl.cnf",
        cwd=directory,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "leaf",
        cwd=directory,
    )
    return directory / "ca.pem", directory / "cert.pem", directory / "key.pem"


def _wait_port(
    address: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited ({process.returncode}):\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{process.args[0]} is not listening on {address}:{port} after {timeout}s")


@dataclass
class Pebble:
    """A running pebble + pebble-challtestsrv; `stop()` ends both."""

    workdir: Path
    listen: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_ca: Path = field(init=False)
    root_pem: bytes = b""

    def __post_init__(self) -> None:
        self.api_ca = self.workdir / "ca.pem"

    @property
    def directory(self) -> str:
        """The ACME directory URL (what `tls.acme_server` is set to)."""
        return f"https://{self.listen}:{API_PORT}/dir"

    @property
    def root_file(self) -> Path:
        """Pebble's issuing root (regenerated at every start): clients verifying the site trust it."""
        return self.workdir / "pebble-root.pem"

    def _management(self, path: str, payload: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{CHALLTESTSRV_MANAGEMENT_PORT}{path}",
            data=json.dumps(payload).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200, response.status

    def point(self, name: str, address: str) -> None:
        """Make challtestsrv answer `name`'s A query with `address` (where pebble validates)."""
        self._management("/add-a", {"host": name.rstrip(".") + ".", "addresses": [address]})

    def start(self, default_address: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _, cert, key = make_api_certificate(self.workdir, [self.listen])
        config = {
            "pebble": {
                "listenAddress": f"{self.listen}:{API_PORT}",
                "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
                "certificate": str(cert),
                "privateKey": str(key),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": VALIDITY_SECONDS,
            }
        }
        (self.workdir / "pebble-config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        dns_log = self.workdir / "challtestsrv.log"
        with open(dns_log, "wb") as out:
            dns = subprocess.Popen(
                [
                    "pebble-challtestsrv",
                    "-defaultIPv4",
                    default_address,
                    "-defaultIPv6",
                    "",
                    "-dns01",
                    f"127.0.0.1:{DNS_PORT}",
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-management",
                    f"127.0.0.1:{CHALLTESTSRV_MANAGEMENT_PORT}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes.append(dns)
        _wait_port("127.0.0.1", CHALLTESTSRV_MANAGEMENT_PORT, dns, dns_log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        # Fast validation; no spurious badNonce; a fresh authorization (a real validation) per order.
        env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
        log = self.workdir / "pebble.log"
        with open(log, "wb") as out:
            pebble = subprocess.Popen(
                [
                    "pebble",
                    "-config",
                    str(self.workdir / "pebble-config.json"),
                    "-dnsserver",
                    f"127.0.0.1:{DNS_PORT}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.processes.append(pebble)
        _wait_port(self.listen, API_PORT, pebble, log)
        _wait_port("127.0.0.1", MANAGEMENT_PORT, pebble, log)
        context = ssl.create_default_context(cafile=str(self.api_ca))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{MANAGEMENT_PORT}/roots/0", context=context, timeout=5
        ) as response:
            self.root_pem = response.read()
        self.root_file.write_bytes(self.root_pem)

    def log(self) -> str:
        return (self.workdir / "pebble.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()


def require_pebble() -> None:
    """Skip with the install line when pebble is missing (CI installs it: see .ci/run)."""
    missing = [t for t in ("pebble", "pebble-challtestsrv", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install pebble openssl")


def route_to(netns: str, address: str, gateway: str) -> None:
    """Give a sandbox host a route to `address` (pebble) through its own veth's machine side."""
    subprocess.run(
        ["ip", "-n", netns, "route", "replace", f"{address}/32", "via", gateway],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def running_pebble(workdir: Path, hosts: Sequence[object]) -> Iterator[Pebble]:
    """Pebble on the first host's gateway, reachable from every host in `hosts` (SandboxHost objects)."""
    require_pebble()
    first = hosts[0]
    listen = str(first.gateway)  # type: ignore[attr-defined]
    for host in hosts[1:]:
        route_to(str(host.netns), listen, str(host.gateway))  # type: ignore[attr-defined]
    pebble = Pebble(workdir, listen)
    try:
        pebble.start(default_address=str(first.address))  # type: ignore[attr-defined]
        yield pebble
    finally:
        pebble.stop()
