"""A local ACME server for the sandbox: Debian's pebble plus pebble-challtestsrv, started and stopped.

`start(workdir, listen, default_address)` makes a throwaway CA and a certificate for pebble's API with
openssl, writes pebble's JSON config (challenges validated on ports 80 and 443, 90-day certificates,
never always-valid), starts `pebble-challtestsrv` answering every DNS name with `default_address` and
pebble resolving through it, then fetches pebble's issuing root from its management port. Every
listener binds to `listen` only (this machine's side of a sandbox host's veth), so sandboxes side by
side never share a port. Both processes run with `workdir` as their working directory: that is how
`processes(workdir)` finds them again after a crash, and `stop` never signals anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

API_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 8053
CHALLTESTSRV_MANAGEMENT_PORT = 8055
#: 90 days, as Let's Encrypt: graders flag lifespans over 366 days (pebble's default is 5 years).
VALIDITY_SECONDS = 7776000
#: Days the certificate of pebble's own API (and its throwaway CA) stays valid.
API_CERTIFICATE_DAYS = 90
#: The programs this needs, and the Debian package that has each.
TOOLS = {"pebble": "pebble", "pebble-challtestsrv": "pebble", "openssl": "openssl"}

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


class AcmeError(Exception):
    """The ACME server could not be started; the message says why."""


def missing_tools() -> list[str]:
    """The programs pebble needs that are not on PATH (empty when it can run)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def install_hint(missing: Sequence[str]) -> str:
    return "sudo apt-get install -y " + " ".join(sorted({TOOLS[t] for t in missing}))


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AcmeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_api_certificate(directory: Path, addresses: Sequence[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for pebble's API on `addresses`: (ca.pem, cert.pem, key.pem)."""
    sans = ",".join(f"IP:{a}" for a in dict.fromkeys((*addresses, "127.0.0.1")))
    (directory / "openssl.cnf").write_text(_OPENSSL_CONFIG.format(sans=sans), encoding="utf-8")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    days = ("-days", str(API_CERTIFICATE_DAYS))
    _openssl(
        "req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", *days,
        "-subj", "/CN=deploy sandbox: pebble API CA", "-config", "openssl.cnf", "-extensions", "ca",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-new", *ec, "-keyout", "key.pem", "-out", "api.csr", "-subj", "/CN=pebble",
        "-config", "openssl.cnf",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "cert.pem", *days, "-extfile", "openssl.cnf", "-extensions", "leaf",
        cwd=directory,
    )  # fmt: skip
    (directory / "ca.key").unlink()  # nothing else is ever signed with it
    return directory / "ca.pem", directory / "cert.pem", directory / "key.pem"


@dataclass(frozen=True)
class AcmeServer:
    """A running pebble and pebble-challtestsrv: where they listen, their files and their pids."""

    workdir: str
    listen: str
    default_address: str
    pids: list[int] = field(default_factory=list)

    @property
    def directory(self) -> str:
        """The ACME directory URL (what `tls.acme_server` is set to)."""
        return f"https://{self.listen}:{API_PORT}/dir"

    @property
    def api_ca(self) -> Path:
        """The CA that signed pebble's API certificate."""
        return Path(self.workdir) / "ca.pem"

    @property
    def root_file(self) -> Path:
        """Pebble's issuing root (new at every start): clients that verify a site trust it."""
        return Path(self.workdir) / "root.pem"

    @property
    def bundle_file(self) -> Path:
        """The API CA and the issuing root: certbot trusts the API with it, `check --live` the site."""
        return Path(self.workdir) / "ca-bundle.pem"

    def point(self, name: str, address: str) -> None:
        """Make challtestsrv answer `name`'s A query with `address` (where pebble validates)."""
        request = urllib.request.Request(
            f"http://{self.listen}:{CHALLTESTSRV_MANAGEMENT_PORT}/add-a",
            data=json.dumps({"host": name.rstrip(".") + ".", "addresses": [address]}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http to our own listener
            if response.status != 200:
                raise AcmeError(f"pebble-challtestsrv answered {response.status} to add-a {name}")

    def log(self) -> str:
        """Pebble's log (requests, validations, errors)."""
        with contextlib.suppress(OSError):
            return (Path(self.workdir) / "pebble.log").read_text(errors="replace")
        return ""


def _wait_port(
    name: str, address: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            raise AcmeError(f"{name} exited ({process.returncode}):\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.05)
    raise AcmeError(f"{name} is not listening on {address}:{port} after {timeout:.0f}s")


def _spawn(argv: list[str], workdir: Path, log_name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(workdir / log_name, "wb") as log:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own session: it outlives `deploy sandbox up` and a closed terminal; `down` stops it.
            start_new_session=True,
        )


def start(workdir: str | os.PathLike[str], listen: str, default_address: str) -> AcmeServer:
    """Start challtestsrv and pebble listening on `listen`; every name resolves to `default_address`."""
    missing = missing_tools()
    if missing:
        raise AcmeError(f"missing {', '.join(missing)}: install with '{install_hint(missing)}'")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    _, cert, key = make_api_certificate(work, [listen])
    config = {
        "pebble": {
            "listenAddress": f"{listen}:{API_PORT}",
            "managementListenAddress": f"{listen}:{MANAGEMENT_PORT}",
            "certificate": str(cert),
            "privateKey": str(key),
            # Challenges are validated on the ports Nginx serves, as Let's Encrypt does.
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": VALIDITY_SECONDS,
        }
    }
    (work / "pebble-config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
    # Fast validation, no spurious badNonce, and a fresh authorization (a real validation) per order.
    # Never PEBBLE_VA_ALWAYS_VALID.
    env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    challtestsrv = [
        "pebble-challtestsrv",
        "-defaultIPv4", default_address,
        "-defaultIPv6", "",
        "-dns01", f"{listen}:{DNS_PORT}",
        "-http01", "",
        "-https01", "",
        "-tlsalpn01", "",
        "-management", f"{listen}:{CHALLTESTSRV_MANAGEMENT_PORT}",
    ]  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    try:
        dns = _spawn(challtestsrv, work, "challtestsrv.log", env)
        processes.append(dns)
        pebble = _spawn(
            ["pebble", "-config", str(work / "pebble-config.json"), "-dnsserver", f"{listen}:{DNS_PORT}"],
            work,
            "pebble.log",
            env,
        )
        processes.append(pebble)
        _wait_port(
            "pebble-challtestsrv", listen, CHALLTESTSRV_MANAGEMENT_PORT, dns, work / "challtestsrv.log"
        )
        _wait_port("pebble", listen, API_PORT, pebble, work / "pebble.log")
        _wait_port("pebble", listen, MANAGEMENT_PORT, pebble, work / "pebble.log")
        server = AcmeServer(str(work), listen, default_address, [p.pid for p in processes])
        try:
            context = ssl.create_default_context(cafile=str(server.api_ca))
            with urllib.request.urlopen(
                f"https://{listen}:{MANAGEMENT_PORT}/roots/0", context=context, timeout=10
            ) as response:
                root = response.read()
        except OSError as exc:
            raise AcmeError(f"could not fetch pebble's root from its management port: {exc}") from exc
        server.root_file.write_bytes(root)
        server.bundle_file.write_bytes(server.api_ca.read_bytes() + root)
        return server
    except BaseException:
        stop(work, [p.pid for p in processes])
        for process in processes:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                process.wait(timeout=1)
        raise


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # a child of this process (up and down in one process)
        return False
    return True


def processes(workdir: str | os.PathLike[str]) -> list[int]:
    """Live processes whose working directory is `workdir`: this ACME server's pebble and challtestsrv."""
    target = str(Path(workdir).absolute())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _cwd(int(entry.name)) == target and _alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def stop(workdir: str | os.PathLike[str], pids: Sequence[int] = (), timeout: float = 10.0) -> list[int]:
    """Stop this ACME server's processes (`pids`, and any found by `processes`); return those stopped.

    A pid is signalled only while its working directory is `workdir`, so a reused pid is never hit.
    """
    target = str(Path(workdir).absolute())
    mine = sorted({p for p in pids if _cwd(p) == target} | set(processes(workdir)))
    for pid in mine:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in mine) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in mine:
        if _alive(pid) and _cwd(pid) == target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in mine) and time.monotonic() < deadline:
        time.sleep(0.05)
    return mine


def overlay_section(server: AcmeServer | None) -> dict[str, str] | bool:
    """The `acme` section of the -e sandbox overlay: where pebble is, or false when there is none."""
    if server is None:
        return False
    return {"server": server.directory, "ca_bundle": str(server.bundle_file)}
