"""HTTPS on the hosts, as plan steps: certbot against an ACME server, the user's own certificate, renewal.

Pure builders: every function here returns data (commands, uploads, steps, file texts). Running them is
the executor's job; reading local files is the CLI's.

Several hosts behind one name. The ACME server validates an http-01 challenge against whichever host
the name resolves to, which need not be the host that asked. So every host of an app shares one ACME
account (registered once, copied to the others) and answers every challenge for that account
*statelessly*: the answer to token T is always `T.<account key thumbprint>` (RFC 8555, section 8.1), so
Nginx can return it without any file (`challenge_snippet`). Each host then obtains and renews its own
certificate with its own certbot timer; no host depends on another, and renewal needs no deploy run.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from deploy.config.model import TLS, Config
from deploy.layout import (
    LETSENCRYPT_DIR,
    account_dir,
    ca_bundle_path,
    certbot_dropin_path,
    challenge_snippet_path,
    deploy_hook_path,
    managed_files,
    paths_for,
    tls_dir,
)
from deploy.plan import Action, Command, Step, Upload
from deploy.remote.commands import (
    DEBIAN_DEFAULT_SITE,
    NGINX_APPLY,
    STAGED,
    make_dir,
    nginx_change,
    nginx_link,
)

if TYPE_CHECKING:
    from cryptography import x509

#: Let's Encrypt's production directory: the ACME server when `tls.acme_server` is not set.
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
#: Warn `deploy check --live` when a certificate has fewer days left than this. certbot renews at 30
#: days left, so a certificate under 21 days means renewal has failed for more than a week.
EXPIRY_WARNING_DAYS = 21
#: An ACME account's key thumbprint: base64url of a SHA-256 digest (RFC 7638), without padding.
_THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: certbot names an account folder with 32 hex digits.
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")


class TLSError(ValueError):
    """Material for TLS that cannot be used (a certificate, a key, an account); the message says why."""


@dataclass(frozen=True)
class TLSFiles:
    """Local files deploy.yaml's `tls` names, read by the CLI: the user's own certificate chain and key,
    or the CA bundle that certbot on the hosts must trust to talk to a private ACME server."""

    cert: bytes | None = None
    key: bytes | None = None
    ca_bundle: bytes | None = None


@dataclass(frozen=True)
class AcmeAccount:
    """An ACME account certbot registered on one host: its folder's files, to copy to the others."""

    server: str
    account_id: str
    #: file name -> content (meta.json, regr.json, private_key.json); private_key.json is secret.
    files: Mapping[str, bytes]

    @property
    def thumbprint(self) -> str:
        """The account key's RFC 7638 thumbprint: the second half of every challenge answer."""
        return jwk_thumbprint(json.loads(self.files["private_key.json"]))


# --- names and paths ---------------------------------------------------------------------------


def tls_settings(config: Config) -> TLS | None:
    """The `tls` section, or None for `tls: false`."""
    tls = config.server.tls
    return None if tls is False else tls


def acme_server(tls: TLS) -> str:
    """The ACME directory URL certbot talks to."""
    return tls.acme_server or LETS_ENCRYPT


def certificate_files(config: Config) -> tuple[str, str]:
    """Where the certificate chain and key Nginx serves live on each host (`tls` must not be false)."""
    paths = paths_for(config)
    if paths.tls_certificate is None or paths.tls_certificate_key is None:
        raise TLSError("tls is false: this app serves no certificate")
    return paths.tls_certificate, paths.tls_certificate_key


# --- file contents -----------------------------------------------------------------------------


def deploy_hook_script(config: Config) -> str:
    """The renewal deploy hook: check the Nginx config, then reload (graceful: no request dropped)."""
    lineage = f"{LETSENCRYPT_DIR}/live/{config.primary_domain}"
    return (
        "#!/bin/sh\n"
        f"# Written by deploy for {config.app.name}. certbot runs every deploy hook after a real renewal,\n"
        "# never on a run that renewed nothing. A reload starts new Nginx workers with the new\n"
        "# certificate while the old ones finish their requests: nothing is dropped.\n"
        "set -eu\n"
        f'[ "${{RENEWED_LINEAGE:-}}" = {shlex.quote(lineage)} ] || exit 0\n'
        "nginx -t -q\n"
        "systemctl reload nginx\n"
    )


def certbot_dropin(config: Config) -> str:
    """certbot.service drop-in that points renewals at the uploaded CA bundle."""
    return (
        f"# Written by deploy for {config.app.name}: a private CA issued the ACME server's certificate.\n"
        "[Service]\n"
        f"Environment=REQUESTS_CA_BUNDLE={ca_bundle_path(config)}\n"
    )


def challenge_snippet(config: Config, thumbprint: str) -> str:
    """Nginx lines that answer any http-01 challenge of the shared ACME account, on any host."""
    if not _THUMBPRINT.match(thumbprint):
        raise TLSError(f"not an ACME account key thumbprint: {thumbprint!r}")
    return (
        f"# Written by deploy for {config.app.name}: the answer to ACME http-01 token T is T.<thumbprint of\n"
        "# the account key>, the same on every host that shares the account, so whichever host the ACME\n"
        "# server reaches can answer a challenge another host asked for. The thumbprint is public.\n"
        'location ~ "^/\\.well-known/acme-challenge/([-_A-Za-z0-9]{1,128})$" {\n'
        "    default_type text/plain;\n"
        f'    return 200 "$1.{thumbprint}";\n'
        "}\n"
    )


# --- commands ----------------------------------------------------------------------------------


def _certbot(config: Config, *args: str) -> tuple[str, ...]:
    """certbot with the environment a private ACME CA needs (through `env`: no shell involved)."""
    tls = tls_settings(config)
    prefix: tuple[str, ...] = ()
    if tls is not None and tls.ca_bundle:
        prefix = ("env", f"REQUESTS_CA_BUNDLE={ca_bundle_path(config)}")
    return (*prefix, "certbot", *args)


def register_command(config: Config, tls: TLS) -> Command:
    """Register the ACME account (once, on the first host). Fails harmlessly when it already exists."""
    assert tls.email is not None  # an ACME tls section always has an email (config validates it)
    return Command(
        _certbot(
            config,
            "register",
            "--non-interactive",
            "--agree-tos",
            "--no-eff-email",
            "--email",
            tls.email,
            "--server",
            acme_server(tls),
        ),
        description="register the ACME account (once; an existing account is kept)",
        sudo=True,
        check=False,
    )


def show_account_command(config: Config, tls: TLS) -> Command:
    """Print the account folder's files as JSON lines (the account key is in them: sensitive output)."""
    folder = account_dir(acme_server(tls))
    # One python3 call (every host has it) reads the single account folder; no shell, no globbing.
    program = (
        "import json,os,sys\n"
        "d=sys.argv[1]\n"
        "ids=sorted(i for i in os.listdir(d) if os.path.isdir(os.path.join(d,i)))\n"
        "print(json.dumps({'ids':ids,'files':{i:{n:open(os.path.join(d,i,n)).read() for n in "
        "('meta.json','regr.json','private_key.json')} for i in ids[:1]}}))\n"
    )
    return Command(
        ("python3", "-c", program, folder),
        description="read the ACME account (kept secret: never printed)",
        sudo=True,
    )


def parse_account(server: str, output: str) -> AcmeAccount:
    """The account from `show_account_command`'s output; exactly one account per server is expected."""
    try:
        data = json.loads(output)
        ids = [str(i) for i in data["ids"]]
        files = data["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TLSError(f"could not read certbot's ACME account for {server}: {type(exc).__name__}") from None
    if not ids:
        raise TLSError(f"certbot has no ACME account for {server} (registration failed?)")
    if len(ids) > 1:
        raise TLSError(
            f"certbot has {len(ids)} ACME accounts for {server} in {account_dir(server)}; "
            "deploy shares exactly one between the hosts: remove the extra ones"
        )
    account_id = ids[0]
    if not _ACCOUNT_ID.match(account_id):
        raise TLSError(f"unexpected certbot account folder name {account_id!r}")
    raw = files.get(account_id, {})
    if set(raw) != {"meta.json", "regr.json", "private_key.json"}:
        raise TLSError(f"certbot's ACME account {account_id} is incomplete")
    account = AcmeAccount(server, account_id, {n: str(v).encode() for n, v in raw.items()})
    account.thumbprint  # noqa: B018 - validates the key now, with a clear error
    return account


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """RFC 7638 thumbprint of a JSON Web Key (its public members only), base64url without padding."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in required:
        raise TLSError(f"unsupported ACME account key type {kty!r}")
    members = {}
    for name in required[kty]:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise TLSError(f"the ACME account key lacks its {name!r} member")
        members[name] = value
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def certonly_command(config: Config, tls: TLS, account_id: str | None = None) -> Command:
    """Obtain (or keep, while it is far from expiry) the certificate for every name in server.domains."""
    assert tls.email is not None
    domains: list[str] = []
    for domain in config.server.domains:
        domains += ["-d", domain]
    account = ("--account", account_id) if account_id else ()
    return Command(
        _certbot(
            config,
            "certonly",
            "--webroot",
            "-w",
            paths_for(config).acme_webroot,
            "--cert-name",
            config.primary_domain,
            *domains,
            "--email",
            tls.email,
            "--agree-tos",
            "--no-eff-email",
            "--non-interactive",
            "--server",
            acme_server(tls),
            *account,
            "--keep-until-expiring",
        ),
        description=f"obtain the certificate for {', '.join(config.server.domains)} (certbot --webroot)",
        sudo=True,
    )


def has_certificate_command(config: Config) -> Command:
    """Succeeds when the certificate Nginx would serve is on the host (a fact for the site's render)."""
    cert, key = certificate_files(config)
    return Command(
        ("test", "-s", cert, "-a", "-s", key),
        description="is the certificate there?",
        sudo=True,
        check=False,
    )


def reload_nginx_commands() -> tuple[Command, ...]:
    """Check the whole Nginx configuration, then reload it gracefully."""
    return (
        Command(("nginx", "-t", "-q"), description="check the Nginx configuration", sudo=True),
        Command(("systemctl", "reload", "nginx"), description="reload Nginx (graceful)", sudo=True),
    )


# --- steps -------------------------------------------------------------------------------------


def acme_prepare_step(config: Config, host: str, tls: TLS, files: TLSFiles) -> Step:
    """Everything certbot needs on a host before the first certificate: webroot, hook, timer, CA."""
    actions: list[Action] = [
        make_dir(paths_for(config).acme_webroot, "root", "root", 0o755, "the ACME webroot"),
        make_dir(
            f"{LETSENCRYPT_DIR}/renewal-hooks/deploy", "root", "root", 0o755, "certbot's deploy hook folder"
        ),
        Upload(
            deploy_hook_path(config),
            deploy_hook_script(config).encode(),
            mode=0o755,
            owner="root",
            group="root",
            description="renewal hook: nginx -t, then reload",
        ),
    ]
    if tls.ca_bundle:
        if files.ca_bundle is None:
            raise TLSError("tls.ca_bundle is set but its content was not read")
        actions += [
            make_dir(tls_dir(config), "root", "root", 0o755, "the app's TLS folder"),
            Upload(
                ca_bundle_path(config),
                files.ca_bundle,
                mode=0o644,
                owner="root",
                group="root",
                description="the CA bundle of the ACME server",
            ),
            make_dir(
                certbot_dropin_path(config).rsplit("/", 1)[0],
                "root",
                "root",
                0o755,
                "certbot.service drop-in folder",
            ),
            Upload(
                certbot_dropin_path(config),
                certbot_dropin(config).encode(),
                mode=0o644,
                owner="root",
                group="root",
                description="renewals trust that CA too",
            ),
            Command(
                ("systemctl", "daemon-reload"), description="load the certbot.service drop-in", sudo=True
            ),
        ]
    actions.append(
        Command(
            ("systemctl", "enable", "--now", "certbot.timer"),
            description="renewal: certbot's systemd timer",
            sudo=True,
        )
    )
    return Step("tls: prepare certbot", host, tuple(actions))


def register_step(config: Config, host: str, tls: TLS) -> Step:
    """Register the ACME account on the first host (the others receive a copy)."""
    return Step("tls: ACME account", host, (register_command(config, tls),))


def share_account_step(config: Config, host: str, account: AcmeAccount) -> Step:
    """Copy the shared ACME account to a host and answer its challenges statelessly there."""
    folder = f"{account_dir(account.server)}/{account.account_id}"
    actions: list[Action] = [
        make_dir(folder, "root", "root", 0o700, "certbot's account folder"),
    ]
    for name in ("meta.json", "regr.json", "private_key.json"):
        secret = name == "private_key.json"
        actions.append(
            Upload(
                f"{folder}/{name}",
                bytes(account.files[name]),
                mode=0o400 if secret else 0o644,
                owner="root",
                group="root",
                sensitive=secret,
                description="the ACME account key" if secret else f"ACME account {name}",
            )
        )
    snippet = challenge_snippet(config, account.thumbprint).encode()
    actions += nginx_change(
        [(challenge_snippet_path(config), snippet, "answer ACME challenges on this host")]
    )
    return Step("tls: share the ACME account", host, tuple(actions))


def obtain_step(config: Config, host: str, tls: TLS, account: AcmeAccount | None) -> Step:
    """certbot certonly on one host (the site must already serve the challenge over HTTP)."""
    return Step(
        "tls: certificate",
        host,
        (certonly_command(config, tls, account.account_id if account else None),),
    )


def own_certificate_step(config: Config, host: str, files: TLSFiles) -> Step:
    """Upload the user's own certificate chain (0644) and key (0600, secret) beside the places Nginx
    reads them (`STAGED`): the HTTPS site's step puts them in place (`site_step`, `own`)."""
    if files.cert is None or files.key is None:
        raise TLSError("tls.cert and tls.key were not read")
    cert, key = certificate_files(config)
    return Step(
        "tls: own certificate",
        host,
        (
            make_dir(tls_dir(config), "root", "root", 0o755, "the app's TLS folder"),
            Upload(
                f"{cert}{STAGED}", files.cert, 0o644, "root", "root", description="certificate chain (staged)"
            ),
            Upload(
                f"{key}{STAGED}",
                files.key,
                0o600,
                "root",
                "root",
                sensitive=True,
                description="private key (0600, staged)",
            ),
        ),
    )


def _with_own_certificate(config: Config, change: tuple[Action, ...]) -> tuple[Action, ...]:
    """`change` (an `nginx_change`) that also puts the staged certificate and key in place, in the same
    NGINX_APPLY as the site: `nginx -t` tests them with it, and a rejected change puts the previous
    pair back with the previous site (a pair written on its own, before the test, stayed for the next
    Nginx restart to meet)."""
    *uploads, apply = change
    head = ("python3", "-c", NGINX_APPLY)
    if not isinstance(apply, Command) or apply.argv[:3] != head:
        raise TLSError("not an Nginx change: its last action is not NGINX_APPLY")
    cert, key = certificate_files(config)
    return (*uploads, dataclass_replace(apply, argv=(*head, "file", cert, "file", key, *apply.argv[3:])))


def reload_step(host: str, name: str = "tls: reload Nginx") -> Step:
    return Step(name, host, reload_nginx_commands())


# --- certificates ------------------------------------------------------------------------------


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise TLSError(f"not a readable PEM certificate: {exc}") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise TLSError("not a certificate (expected PEM or DER)") from None


def certificate_days_left(pem_or_der: bytes, now: datetime.datetime) -> int:
    """Whole days from `now` until the (first) certificate expires; negative once it has expired."""

    certificate = _load_certificates(pem_or_der)[0]
    if now.tzinfo is None:
        raise TLSError("`now` must be timezone-aware")
    return (certificate.not_valid_after_utc - now).days


def expiry_message(days_left: int, warn_below: int = EXPIRY_WARNING_DAYS) -> tuple[bool, str]:
    """(ok, message) for a certificate with `days_left`: not ok below `warn_below` days."""
    if days_left < 0:
        return False, f"the certificate expired {-days_left} day(s) ago"
    if days_left < warn_below:
        return False, (
            f"the certificate expires in {days_left} day(s); certbot renews at 30 days left, so renewal "
            "is failing: see 'journalctl -u certbot' on the host"
        )
    return True, f"the certificate expires in {days_left} day(s)"


def check_own_certificate(config: Config, files: TLSFiles, now: datetime.datetime) -> list[str]:
    """Problems with the user's own certificate and key: unreadable, mismatched, expired, wrong names."""
    assert files.cert is not None and files.key is not None
    problems = []
    try:
        chain = _load_certificates(files.cert)
    except TLSError as exc:
        return [f"tls.cert: {exc}"]
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(files.key, password=None)
    except (ValueError, TypeError) as exc:
        return [f"tls.key: not an unencrypted PEM private key ({str(exc).splitlines()[0]})"]
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*fmt) != leaf.public_key().public_bytes(*fmt):
        problems.append("tls.key does not belong to the certificate in tls.cert")
    days = certificate_days_left(files.cert, now)
    if days < 0:
        problems.append(f"tls.cert expired {-days} day(s) ago")
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = [n.lower() for n in names.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        dns_names = []
    for domain in config.server.domains:
        parent = domain.split(".", 1)[1] if "." in domain else ""
        if domain not in dns_names and f"*.{parent}" not in dns_names:
            problems.append(
                f"tls.cert does not cover {domain} (it names: {', '.join(dns_names) or 'nothing'})"
            )
    return problems


def site_files(config: Config, rendered: Mapping[str, str]) -> list[tuple[str, str]]:
    """(path on the host, text) of the Nginx site, its snippets and the default servers (render's output)."""
    return [(path, rendered[key]) for path, key in managed_files(config)[1:] if key in rendered]


def site_step(config: Config, host: str, rendered: Mapping[str, str], name: str, own: bool = False) -> Step:
    """Install the rendered Nginx site (HTTP-only or HTTPS, as rendered), enable it, test and reload;
    `own`: with the certificate and key `own_certificate_step` staged, in the same change."""
    # Debian's own default site claims default_server on port 80, as deploy's catch-all does.
    actions = nginx_change(
        [(path, text.encode(), path) for path, text in site_files(config, rendered)],
        [nginx_link(config)],
        [DEBIAN_DEFAULT_SITE],
    )
    return Step(name, host, _with_own_certificate(config, actions) if own else actions)


def read_certificate_command(config: Config) -> Command:
    """Print the certificate chain Nginx serves (public data) to read its expiry."""
    return Command(("cat", certificate_files(config)[0]), description="read the certificate", sudo=True)
