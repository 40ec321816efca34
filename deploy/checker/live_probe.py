"""What `deploy check --live` learns from the hosts (over SSH, through the executor) and the site (HTTP(S)).

Gathering is the only I/O; the result is plain data (`LiveFacts`) that the live checks read, so they
are tested on hand-made facts and, for real, on sandbox hosts. Requests go to each configured host's
address with the app's domain as Host header and TLS server name (the names need not resolve yet).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deploy.layout import layout_for, managed_files
from deploy.plan import Command
from deploy.remote.commands import SLOTS
from deploy.remote.executor import SSHExecutor, each, host_name
from deploy.remote.facts import parse_state, probe_command
from deploy.remote.scripts import script
from deploy.render.render import render

if TYPE_CHECKING:
    from pathlib import Path

    from deploy.config.model import Config
    from deploy.remote.facts import HostState

HTTP_TIMEOUT = 10.0
#: Suites outside Mozilla's intermediate profile: RSA key exchange, finite-field DHE, CBC with SHA-1,
#: 3DES; for RSA and ECDSA certificates alike. A server that agrees to any of them is reported.
WEAK_SUITES = (
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:"
    "AES128-SHA:AES256-SHA:AES128-GCM-SHA256:DES-CBC3-SHA:DHE-RSA-AES128-SHA:DHE-RSA-AES128-GCM-SHA256:"
    "@SECLEVEL=0"
)

#: Facts the push probe does not gather: worker processes per unit, the certbot timer, free disk.
EXTRA_PROBE = script("live_probe.py")


@dataclass(frozen=True)
class HostLive:
    """One host as found over SSH."""

    host: str
    state: HostState | None = None
    #: Worker processes under each slot unit's main process (None: the unit has no main process).
    workers: dict[str, int | None] = field(default_factory=dict)
    certbot_timer: str | None = None
    disk_free: int | None = None
    disk_total: int | None = None
    #: {rendered key: (host path, rendered text)} of every file deploy installs.
    rendered: dict[str, tuple[str, str]] = field(default_factory=dict)
    error: str | None = None
    #: The host could not be reached at all (name does not resolve, connection refused, timeout).
    unreachable: bool = False


@dataclass(frozen=True)
class Response:
    """One HTTP answer: status, headers (names lower-cased, repeated ones kept), start of the body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass(frozen=True)
class SiteLive:
    """The site as one host serves it."""

    host: str
    domain: str
    tls: bool
    http_root: Response | None = None
    root: Response | None = None
    health: Response | None = None
    console: Response | None = None
    debugger: Response | None = None
    tls_version: str | None = None
    cipher: str | None = None
    cert_days_left: int | None = None
    old_protocols: tuple[str, ...] = ()
    weak_ciphers: bool = False
    errors: tuple[str, ...] = ()
    #: Why the site was not visited (its host is unreachable); None when it was.
    unreachable: str | None = None


@dataclass(frozen=True)
class LiveFacts:
    """Everything --live found, or why it could not look."""

    hosts: tuple[HostLive, ...] = ()
    sites: tuple[SiteLive, ...] = ()
    error: str | None = None


# --- SSH -----------------------------------------------------------------------------------------


def extra_command(config: Config) -> Command:
    layout = layout_for(config)
    request = json.dumps({"units": [layout.unit(slot) for slot in SLOTS], "disk": layout.paths.base})
    return Command(("python3", "-c", EXTRA_PROBE, request), "gather live facts", sudo=True)


def probe_hosts(config: Config, root: Path) -> tuple[HostLive, ...]:
    """Gather facts from every host over one SSH connection each (host keys verified)."""
    executor = SSHExecutor(config, config.server.hosts)
    extra = extra_command(config)

    def one(host: str) -> HostLive:
        # A host whose roles leave out web has no Nginx (nor its site): neither is tested there.
        web = config.runs_web(host)
        state = parse_state(host, executor.gather(host, probe_command(config, nginx_test=web)))
        data = json.loads(executor.gather(host, extra).strip().splitlines()[-1])
        rendered = render(config, state.facts, root)
        installed = managed_files(config) if web else managed_files(config)[:1]
        files = {key: (path, rendered[key]) for path, key in installed if key in rendered}
        disk = data.get("disk", {})
        return HostLive(
            host,
            state,
            data.get("workers", {}),
            data.get("certbot_timer"),
            disk.get("free"),
            disk.get("total"),
            files,
        )

    try:
        results = each([host_name(h) for h in config.server.hosts], one)
    finally:
        executor.close()
    return tuple(
        r
        if isinstance(r, HostLive)
        else HostLive(
            h,
            error=_first_line(str(r)) or type(r).__name__,
            unreachable="cannot connect to port" in str(r) or isinstance(r, OSError),
        )
        for h, r in results.items()
    )


#: Names reserved for examples (RFC 2606, RFC 6761) that `deploy init` writes as placeholders; `.test`
#: is not among them: the sandbox hosts use it.
_PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")


def placeholder_hosts(config: Config) -> list[str]:
    """The hosts of deploy.yaml that are documentation placeholders (web1.example.com, x.invalid)."""
    out = []
    for host in config.server.hosts:
        address = host.address.strip("[]").rstrip(".").lower()
        if (
            address.endswith(".invalid")
            or address == "invalid"
            or any(address == d or address.endswith("." + d) for d in _PLACEHOLDER_DOMAINS)
        ):
            out.append(host_name(host))
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --- HTTP(S) -------------------------------------------------------------------------------------


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to a given address, with the site's domain as TLS server name (SNI) and for verification."""

    def __init__(self, address: str, port: int, domain: str, context: ssl.SSLContext, timeout: float):
        super().__init__(address, port, timeout=timeout, context=context)
        self._domain = domain
        self._context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._domain)


def _request(conn: http.client.HTTPConnection, path: str, domain: str) -> Response:
    try:
        conn.request("GET", path, headers={"Host": domain, "User-Agent": "deploy-check"})
        answer = conn.getresponse()
        body = answer.read(65536).decode("utf-8", "replace")
        headers = tuple((k.lower(), v) for k, v in answer.getheaders())
        return Response(answer.status, headers, body)
    finally:
        conn.close()


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    return context


def _try_handshake(address: str, port: int, domain: str, context: ssl.SSLContext, timeout: float) -> bool:
    try:
        with (
            socket.create_connection((address, port), timeout) as sock,
            context.wrap_socket(sock, server_hostname=domain),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _legacy_context(version: ssl.TLSVersion | None, ciphers: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers(ciphers)
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # asking for old versions is the point
            try:
                context.minimum_version = version
                context.maximum_version = version
            except (ValueError, ssl.SSLError):
                pass
    return context


def probe_site(
    address: str,
    domain: str,
    *,
    tls: bool,
    health: str,
    ca_bundle: str | None = None,
    http_port: int = 80,
    https_port: int = 443,
    timeout: float = HTTP_TIMEOUT,
) -> SiteLive:
    """Visit the site on one host: HTTP, HTTPS, health, debugger paths, TLS protocols and certificate."""
    errors: list[str] = []
    found: dict[str, Any] = {}

    def plain() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(address, http_port, timeout=timeout)

    def secure() -> http.client.HTTPConnection:
        return _Pinned(address, https_port, domain, tls_context(ca_bundle), timeout)

    main = secure if tls else plain
    for key, make, path in (
        ("http_root", plain, "/"),
        ("root", main, "/"),
        ("health", main, health),
        ("console", main, "/console"),
        ("debugger", main, "/?__debugger__=yes&cmd=resource&f=debugger.js"),
    ):
        if key == "http_root" and not tls:
            continue
        try:
            found[key] = _request(make(), path, domain)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            errors.append(
                f"GET {'https' if make is secure else 'http'}://{domain}{path} via {address}: {exc}"
            )
    if not tls:
        found["http_root"] = found.get("root")
    if tls:
        try:
            with (
                socket.create_connection((address, https_port), timeout) as sock,
                tls_context(ca_bundle).wrap_socket(sock, server_hostname=domain) as conn,
            ):
                found["tls_version"] = conn.version()
                cipher = conn.cipher()
                found["cipher"] = cipher[0] if cipher else None
                cert = conn.getpeercert()
                if cert and "notAfter" in cert:
                    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
                    found["cert_days_left"] = (expires - datetime.now(UTC)).days
        except ssl.SSLError as exc:
            errors.append(f"TLS handshake with {domain} via {address}: {exc}")
        except OSError as exc:
            errors.append(f"cannot connect to {address}:{https_port}: {exc}")
        old = []
        for name, version in (("TLSv1", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1)):
            if _try_handshake(
                address, https_port, domain, _legacy_context(version, "ALL:@SECLEVEL=0"), timeout
            ):
                old.append(name)
        found["old_protocols"] = tuple(old)
        weak = _legacy_context(ssl.TLSVersion.TLSv1_2, WEAK_SUITES)
        found["weak_ciphers"] = _try_handshake(address, https_port, domain, weak, timeout)
    return SiteLive(address, domain, tls, errors=tuple(errors), **found)


def probe(
    config: Config, root: Path, environment: str | None, site_prober: Callable[..., SiteLive] = probe_site
) -> LiveFacts:
    """The default live probe: every host of `config` over SSH, then the site on each host."""
    if not config.server.hosts:
        return LiveFacts(
            error=f"deploy.yaml{' -e ' + environment if environment else ''} names no hosts"
        )
    placeholders = placeholder_hosts(config)
    if placeholders:
        return LiveFacts(error=placeholder_message(placeholders, environment))
    hosts = probe_hosts(config, root)
    tls = config.server.tls is not False
    ca_bundle = config.server.tls.ca_bundle if config.server.tls is not False else None
    sites = tuple(
        SiteLive(h.address.strip("[]"), config.primary_domain, tls, unreachable=found.error)
        if found.unreachable
        else site_prober(
            h.address.strip("[]"),
            config.primary_domain,
            tls=tls,
            health=config.app.health,
            ca_bundle=ca_bundle,
        )
        for h, found in zip(config.server.hosts, hosts, strict=True)
    )
    return LiveFacts(hosts, sites)


def placeholder_message(hosts: list[str], environment: str | None) -> str:
    where = f"deploy.yaml{' -e ' + environment if environment else ''}"
    return (
        f"{where} names placeholder hosts ({', '.join(hosts)}): example.com, .net, .org and .invalid "
        "names are reserved for documentation; put your servers' real addresses in server.hosts"
    )
