"""HTTPS plans: certbot command lines, the renewal hook, the shared ACME account, own certificates, order."""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.config.loader import ConfigError, load_text
from deploy.config.model import Config
from deploy.layout import account_dir, challenge_snippet_path, paths_for
from deploy.plan import Command, Step, Upload
from deploy.remote.commands import NGINX_APPLY, STAGED
from deploy.remote.executor import Recorder, StepResult, display_line
from deploy.remote.facts import HostFacts
from deploy.render.render import render
from deploy.tls import certs
from deploy.tls import steps as tls

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
UTC = datetime.UTC
NOW = datetime.datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
PEBBLE = "https://10.87.1.1:14000/dir"


def config(
    tls_yaml: str = "{email: ops@example.com}",
    domains: str = "[flaskr.example.com, www.flaskr.example.com]",
    hosts: str = "[10.0.0.1, 10.0.0.2]",
) -> Config:
    return load_text(
        "app: {name: flaskr, wsgi: 'flaskr:create_app()'}\n"
        f"server: {{domains: {domains}, hosts: {hosts}, tls: {tls_yaml}}}\n"
    )


ACME = f"{{email: ops@example.com, acme_server: '{PEBBLE}', ca_bundle: pebble-ca.pem}}"


def settings(cfg: Config) -> tls.TLS:
    found = tls.tls_settings(cfg)
    assert found is not None
    return found


# --- command lines -------------------------------------------------------------------------------


def test_certonly_command_line_against_a_private_acme_server() -> None:
    cfg = config(ACME)
    command = tls.certonly_command(cfg, settings(cfg), "0123456789abcdef0123456789abcdef")
    assert command.line() == (
        "env REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem "
        "certbot certonly --webroot -w /var/lib/deploy/acme "
        "--cert-name flaskr.example.com -d flaskr.example.com -d www.flaskr.example.com "
        "--email ops@example.com --agree-tos --no-eff-email --non-interactive "
        f"--server {PEBBLE} --account 0123456789abcdef0123456789abcdef --keep-until-expiring"
    )
    assert command.sudo and command.check


def test_certonly_defaults_to_lets_encrypt_without_extra_trust() -> None:
    cfg = config()
    line = tls.certonly_command(cfg, settings(cfg)).line()
    assert line.startswith("certbot certonly --webroot -w /var/lib/deploy/acme ")
    assert "--server https://acme-v02.api.letsencrypt.org/directory" in line
    assert "REQUESTS_CA_BUNDLE" not in line
    assert "--account" not in line


def test_register_command_tolerates_an_existing_account() -> None:
    cfg = config()
    command = tls.register_command(cfg, settings(cfg))
    assert command.line() == (
        "certbot register --non-interactive --agree-tos --no-eff-email --email ops@example.com "
        "--server https://acme-v02.api.letsencrypt.org/directory"
    )
    assert command.check is False


@pytest.mark.parametrize(
    ("server", "folder"),
    [
        (PEBBLE, "/etc/letsencrypt/accounts/10.87.1.1:14000/dir"),
        (tls.LETS_ENCRYPT, "/etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory"),
        ("https://ca.internal/", "/etc/letsencrypt/accounts/ca.internal"),
    ],
)
def test_account_folder_follows_certbots_layout(server: str, folder: str) -> None:
    assert account_dir(server) == folder


LABEL_63 = "a" * 63
HOSTILE_DOMAINS = [
    "flaskr.example.com\nserver_name evil.example.com",  # a second Nginx directive
    "flaskr.example.com\n",  # a trailing newline: `$` in a regex lets it through
    "flaskr.example.com\t",
    " flaskr.example.com",
    "flaskr example.com",  # two server_name values
    "flaskr.example.com;",
    "flaskr.example.com; return 302 https://evil.example.com",
    "$(reboot).example.com",
    "`id`.example.com",
    "flaskr.example.com{",
    "flaskr}.example.com",
    "flaskr.example.com#",
    "flaskr'.example.com",
    'flaskr".example.com',
    "flaskr\\.example.com",
    "flaskr/.example.com",
    "flaskr.example.com:443",
    "flaskr\x00.example.com",
    "ex\u0430mple.com",  # Cyrillic a
    "\u212aexample.com",  # Kelvin sign: str.lower() turns it into an ASCII k
    "\uff45xample.com",  # fullwidth e
    "flaskr\u3002example.com",  # ideographic full stop
    f"{LABEL_63}a.example.com",  # a 64-character label
    f"{LABEL_63}.{LABEL_63}.{LABEL_63}.{'a' * 62}",  # 254 characters
    "*",
    "*.",
    "*.com",  # a wildcard over a whole top-level domain
    "*example.com",
    "**.example.com",
    "*.*.example.com",
    "flaskr.*.example.com",
    "example.*",
    "-flaskr.example.com",
    "flaskr-.example.com",
    "flaskr..example.com",
    ".example.com",
    "example.com.",
    "_acme.example.com",
    "",
]


@pytest.mark.parametrize("domain", HOSTILE_DOMAINS)
def test_hostile_domains_are_rejected_with_a_one_line_error(domain: str) -> None:
    # JSON strings are YAML double-quoted scalars: every character reaches the validator as written.
    with pytest.raises(ConfigError) as info:
        config(domains=f"[www.example.com, {json.dumps(domain)}]")
    assert [p.key for p in info.value.problems] == ["server.domains[1]"], info.value.problems
    message = str(info.value)
    assert message.startswith("deploy.yaml:2: server.domains[1]: expected a domain name")
    assert "\n" not in message.strip() and repr(domain) in message


@pytest.mark.parametrize(
    ("domain", "kept"),
    [
        (f"{LABEL_63}.{LABEL_63}.{LABEL_63}.{'a' * 61}", None),  # 253 characters: the longest name
        ("xn--80ak6aa92e.com", None),  # a Unicode name in its ASCII (punycode) form
        ("Shop.Example.COM", "shop.example.com"),
        ("1-2.example.com", None),
    ],
)
def test_names_at_the_limits_are_accepted(domain: str, kept: str | None) -> None:
    assert config(domains=f"[{json.dumps(domain)}]").server.domains == [kept or domain]


def test_a_domain_stays_one_argument_of_certbot_even_if_validation_were_bypassed() -> None:
    cfg = config(domains="[flaskr.example.com]")
    hostile = "a.example.com; touch /tmp/pwned $(id)"
    forged = cfg.model_copy(update={"server": cfg.server.model_copy(update={"domains": [hostile]})})
    command = tls.certonly_command(forged, settings(forged))
    assert command.argv[command.argv.index("-d") + 1] == hostile
    assert "-d 'a.example.com; touch /tmp/pwned $(id)'" in command.line()


# --- the renewal hook, run for real with stand-ins for nginx and systemctl -----------------------------


@pytest.fixture
def fake_tools(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("nginx", "systemctl"):
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/sh\necho "{tool} $*" >> {calls}\n'
            f'[ "{tool} $*" != "nginx -t -q" ] || exit "${{NGINX_T_EXIT:-0}}"\n'
        )
        script.chmod(0o755)
    return bin_dir, calls


def run_hook(cfg: Config, bin_dir: Path, lineage: str, nginx_ok: bool = True) -> int:
    hook = bin_dir.parent / "hook"
    hook.write_text(tls.deploy_hook_script(cfg))
    hook.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RENEWED_LINEAGE": lineage,
        "NGINX_T_EXIT": "0" if nginx_ok else "1",
    }
    return subprocess.run([str(hook)], env=env, check=False).returncode


def test_hook_reloads_nginx_after_its_own_certificate_renewed(fake_tools: tuple[Path, Path]) -> None:
    bin_dir, calls = fake_tools
    assert run_hook(config(), bin_dir, "/etc/letsencrypt/live/flaskr.example.com") == 0
    assert calls.read_text().splitlines() == ["nginx -t -q", "systemctl reload nginx"]


def test_hook_ignores_other_certificates(fake_tools: tuple[Path, Path]) -> None:
    bin_dir, calls = fake_tools
    assert run_hook(config(), bin_dir, "/etc/letsencrypt/live/other.example.com") == 0
    assert not calls.exists()


def test_hook_never_reloads_a_broken_configuration(fake_tools: tuple[Path, Path]) -> None:
    bin_dir, calls = fake_tools
    assert run_hook(config(), bin_dir, "/etc/letsencrypt/live/flaskr.example.com", nginx_ok=False) != 0
    assert calls.read_text().splitlines() == ["nginx -t -q"]


# --- the shared ACME account ----------------------------------------------------------------------

RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
        "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur"
        "-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
ACCOUNT_ID = "f30d743280e8f27740caab5774a39807"


def test_thumbprint_matches_rfc_7638_example() -> None:
    assert tls.jwk_thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_ignores_private_members() -> None:
    assert tls.jwk_thumbprint({**RFC7638_KEY, "d": "secret", "p": "x"}) == tls.jwk_thumbprint(RFC7638_KEY)


def test_thumbprint_rejects_unknown_key_types() -> None:
    with pytest.raises(tls.TLSError, match="unsupported ACME account key type"):
        tls.jwk_thumbprint({"kty": "oct", "k": "abc"})


def account_output(ids: list[str], key: Mapping[str, object] = RFC7638_KEY) -> str:
    files = {
        i: {
            "meta.json": "{}",
            "regr.json": '{"uri": "https://x/acct/1"}',
            "private_key.json": json.dumps(key),
        }
        for i in ids[:1]
    }
    return json.dumps({"ids": ids, "files": files})


def test_parse_account_reads_the_one_account() -> None:
    account = tls.parse_account(PEBBLE, account_output([ACCOUNT_ID]))
    assert account.account_id == ACCOUNT_ID
    assert account.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (account_output([]), "has no ACME account"),
        (account_output([ACCOUNT_ID, "0" * 32]), "has 2 ACME accounts"),
        ("certbot: command not found", "could not read"),
        (account_output(["../../etc"]), "unexpected certbot account folder"),
    ],
)
def test_parse_account_refuses_what_it_cannot_share(output: str, message: str) -> None:
    with pytest.raises(tls.TLSError, match=message):
        tls.parse_account(PEBBLE, output)


def test_parse_account_errors_never_echo_the_key() -> None:
    broken = json.dumps(
        {"ids": [ACCOUNT_ID], "files": {ACCOUNT_ID: {"private_key.json": '{"d": "SECRETKEY"}'}}}
    )
    with pytest.raises(tls.TLSError) as info:
        tls.parse_account(PEBBLE, broken)
    assert "SECRETKEY" not in str(info.value)


def test_share_step_keeps_the_account_key_secret() -> None:
    cfg = config(ACME)
    account = tls.parse_account(PEBBLE, account_output([ACCOUNT_ID]))
    step = tls.share_account_step(cfg, "10.0.0.2", account)
    uploads = {a.remote_path: a for a in step.actions if isinstance(a, Upload)}
    key = uploads[f"/etc/letsencrypt/accounts/10.87.1.1:14000/dir/{ACCOUNT_ID}/private_key.json"]
    assert key.sensitive and key.mode == 0o400
    snippet = uploads["/etc/nginx/snippets/flaskr-acme-stateless.conf.deploy-new"].content.decode()
    assert 'return 200 "$1.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";' in snippet
    apply = [a for a in step.actions if isinstance(a, Command)][-1]
    assert apply.argv[2:] == (NGINX_APPLY, "file", "/etc/nginx/snippets/flaskr-acme-stateless.conf")
    recorder = Recorder()
    recorder.run_step("10.0.0.2", step)
    assert "(secret)" in " ".join(recorder.lines())
    assert "RS256" not in " ".join(recorder.lines())


@pytest.mark.parametrize("bad", ["", "x" * 42, 'abc";\n return 302 http://evil', "a" * 43 + "$"])
def test_challenge_snippet_takes_only_a_thumbprint(bad: str) -> None:
    with pytest.raises(tls.TLSError):
        tls.challenge_snippet(config(), bad)


def test_rendered_site_includes_the_stateless_answers_on_port_80() -> None:
    site = render(config(), HostFacts(has_certificate=False))["nginx/flaskr.conf"]
    acme = site[site.index("location ^~ /.well-known/acme-challenge/") :]
    acme = acme[: acme.index("}")]
    pattern = acme.split("include ", 1)[1].split(";", 1)[0]
    # The snippet deploy writes is one the site's include pattern picks up.
    assert fnmatch.fnmatch(challenge_snippet_path(config()), pattern)


# --- preparing hosts ----------------------------------------------------------------------------


def test_prepare_step_installs_hook_and_timer() -> None:
    cfg = config()
    step = tls.acme_prepare_step(cfg, "10.0.0.1", settings(cfg), tls.TLSFiles())
    uploads = {a.remote_path: a for a in step.actions if isinstance(a, Upload)}
    hook = uploads["/etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload"]
    assert hook.mode == 0o755
    assert b"nginx -t -q\nsystemctl reload nginx\n" in hook.content
    lines = [display_line(a) for a in step.actions if isinstance(a, Command)]
    assert any(line.endswith(" dir /var/lib/deploy/acme root root 0755") for line in lines)
    assert lines[-1] == "systemctl enable --now certbot.timer"
    assert not any("certbot.service.d" in path for path in uploads)


def test_prepare_step_makes_renewals_trust_a_private_ca() -> None:
    cfg = config(ACME)
    step = tls.acme_prepare_step(cfg, "10.0.0.1", settings(cfg), tls.TLSFiles(ca_bundle=b"PEM"))
    uploads = {a.remote_path: a for a in step.actions if isinstance(a, Upload)}
    assert uploads["/etc/flaskr/tls/acme-ca.pem"].content == b"PEM"
    dropin = uploads["/etc/systemd/system/certbot.service.d/flaskr-acme-ca.conf"].content.decode()
    assert "[Service]\nEnvironment=REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem\n" in dropin
    assert "systemctl daemon-reload" in [a.line() for a in step.actions if isinstance(a, Command)]


def test_own_certificate_key_is_0600_and_secret() -> None:
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    step = tls.own_certificate_step(cfg, "10.0.0.1", tls.TLSFiles(cert=b"CERT", key=b"KEY"))
    uploads = {a.remote_path: a for a in step.actions if isinstance(a, Upload)}
    # Staged beside their places: the HTTPS site's step puts them there.
    assert uploads["/etc/flaskr/tls/privkey.pem.deploy-new"].mode == 0o600
    assert uploads["/etc/flaskr/tls/privkey.pem.deploy-new"].sensitive
    assert uploads["/etc/flaskr/tls/fullchain.pem.deploy-new"].mode == 0o644
    assert not uploads["/etc/flaskr/tls/fullchain.pem.deploy-new"].sensitive


def test_an_own_certificate_goes_in_place_with_the_site_in_one_nginx_change() -> None:
    """NGINX_APPLY puts the staged pair in place with the site's files and tests them together: a
    change Nginx rejects puts the previous pair back with the previous site."""
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    rendered = render(cfg, HostFacts(has_certificate=True))
    plain = tls.site_step(cfg, "h", rendered, "tls: HTTPS site")
    own = tls.site_step(cfg, "h", rendered, "tls: HTTPS site", own=True)
    assert own.actions[:-1] == plain.actions[:-1]
    applied, before = own.actions[-1], plain.actions[-1]
    assert isinstance(applied, Command) and isinstance(before, Command)
    assert applied.argv == (
        *before.argv[:3],
        "file",
        "/etc/flaskr/tls/fullchain.pem",
        "file",
        "/etc/flaskr/tls/privkey.pem",
        *before.argv[3:],
    )
    # Nothing secret in the site's step: Nginx's own words stay visible when it fails.
    assert not any(isinstance(a, Upload) and a.sensitive for a in own.actions)
    with pytest.raises(tls.TLSError, match="not an Nginx change"):
        tls._with_own_certificate(cfg, (Command(("true",)),))


# --- the order over hosts ---------------------------------------------------------------------------


class ScriptedHosts(Recorder):
    """Records steps and every action with its content; answers `run` as hosts would: the hosts in
    `with_certificate` already have theirs, one ACME account."""

    def __init__(self, has_certificate: bool = False, with_certificate: frozenset[str] = frozenset()):
        super().__init__()
        self.has_certificate = has_certificate
        self.with_certificate = with_certificate
        #: (host, step name, action), in the order the hosts would have run them.
        self.actions: list[tuple[str, str, Command | Upload]] = []

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        super().run(host, command, timeout)
        if command.argv[0] == "test":
            return (0 if self.has_certificate or host in self.with_certificate else 1), ""
        if command.argv[0] == "python3":
            return 0, account_output([ACCOUNT_ID])
        return 0, ""

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        self.actions += [(host, step.name, action) for action in step.actions]
        return result


CA_FILES = tls.TLSFiles(ca_bundle=b"PEM")


def install(cfg: Config, executor: Recorder, files: tls.TLSFiles = CA_FILES) -> list[str]:
    hosts = [str(h.address) for h in cfg.server.hosts]
    certs.install_certificates(
        cfg, executor, hosts, files, {h: HostFacts() for h in hosts}, lambda f: render(cfg, f), parallel=False
    )
    return [f"{host} {step}" for host, step, _ in executor.log if step not in ("run",)]


def serves_tls(text: str) -> bool:
    return "listen 443" in text or "ssl_certificate" in text


def assert_https_only_after_the_certificate(
    cfg: Config, actions: list[tuple[str, str, Command | Upload]], hosts_with_certificate: set[str]
) -> None:
    """On each host, in the order of its actions: a host without a certificate gets the HTTP-only site
    (serving the ACME challenge path) and a reload before certbot runs, and no Nginx file that serves
    TLS is written before certbot has obtained the certificate; after it, the HTTPS site and a reload."""
    site = paths_for(cfg).nginx_site
    cert, _ = tls.certificate_files(cfg)
    for host in dict.fromkeys(h for h, _, _ in actions):
        mine = [action for h, _, action in actions if h == host]
        lines = [a.line() if isinstance(a, Command) else f"write {a.remote_path}" for a in mine]
        certbot = next(i for i, line in enumerate(lines) if "certbot certonly" in line)
        # Nginx files are staged beside their targets, then one program installs, tests and reloads.
        site_writes = [
            i for i, a in enumerate(mine) if isinstance(a, Upload) and a.remote_path == site + STAGED
        ]
        applies = [
            i
            for i, a in enumerate(mine)
            if isinstance(a, Command) and NGINX_APPLY in a.argv and site in a.argv
        ]
        first_site, last_site = site_writes[0], site_writes[-1]
        assert first_site < certbot < last_site, (host, lines)
        first_text = cast(Upload, mine[first_site]).content.decode()
        assert "/.well-known/acme-challenge/" in first_text
        assert any(first_site < i < certbot for i in applies), (host, lines)
        if host not in hosts_with_certificate:
            assert not serves_tls(first_text), f"{host}: HTTPS site before certbot had a certificate"
            early = [
                a.remote_path
                for a in mine[:certbot]
                if isinstance(a, Upload)
                and a.remote_path.startswith("/etc/nginx/")
                and serves_tls(a.content.decode())
            ]
            assert early == [], f"{host}: Nginx files serving TLS written before certbot: {early}"
        final = cast(Upload, mine[last_site]).content.decode()
        assert "listen 443" in final and f"ssl_certificate {cert};" in final
        assert applies[-1] == len(mine) - 1 and applies[-1] > last_site, (host, lines[last_site:])


def test_acme_order_http_site_then_certbot_then_https_site() -> None:
    cfg = config(ACME)
    executor = ScriptedHosts()
    log = install(cfg, executor)
    steps = list(dict.fromkeys(line.split(" ", 1)[1] for line in log))
    assert steps == [
        "tls: site before certbot",
        "tls: prepare certbot",
        "tls: ACME account",
        "tls: share the ACME account",
        "tls: certificate",
        "tls: HTTPS site",
    ]
    # The account is registered on the first host only, and every host gets its own certificate.
    assert [h for h, s, _ in executor.log if s == "tls: ACME account"] == ["10.0.0.1"]
    certbot_hosts = [h for h, s, line in executor.log if s == "tls: certificate" and "certonly" in line]
    assert certbot_hosts == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize("with_certificate", [frozenset(), frozenset({"10.0.0.2"})])
def test_site_before_certbot_is_http_only_without_a_certificate(with_certificate: frozenset[str]) -> None:
    # What the hosts would be sent, in order: a site serving TLS before certbot has a certificate makes
    # `nginx -t` fail (no such file), and the challenge could never be answered.
    cfg = config(ACME)
    executor = ScriptedHosts(with_certificate=with_certificate)
    install(cfg, executor)
    assert_https_only_after_the_certificate(cfg, executor.actions, set(with_certificate))
    if with_certificate:
        # A host that has its certificate keeps serving HTTPS while certbot renews.
        first = next(
            a
            for h, s, a in executor.actions
            if h == "10.0.0.2"
            and isinstance(a, Upload)
            and a.remote_path == paths_for(cfg).nginx_site + STAGED
        )
        assert serves_tls(first.content.decode())


def test_dry_run_plan_is_in_the_same_order() -> None:
    cfg = config(ACME)
    hosts = ["10.0.0.1", "10.0.0.2"]
    facts = {"10.0.0.1": HostFacts(has_certificate=False), "10.0.0.2": HostFacts(has_certificate=True)}
    steps = certs.planned_steps(cfg, hosts, CA_FILES, facts, lambda f: render(cfg, f))
    actions = [(s.host, s.name, a) for s in steps for a in s.actions]
    assert_https_only_after_the_certificate(cfg, actions, {"10.0.0.2"})


def test_tls_false_does_nothing() -> None:
    cfg = config("false")
    executor = ScriptedHosts()
    outcome = certs.install_certificates(cfg, executor, ["10.0.0.1"], tls.TLSFiles(), {}, lambda f: {})
    assert executor.log == [] and outcome.results == {}


def test_own_certificate_order_needs_no_certbot() -> None:
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    executor = ScriptedHosts()
    install(cfg, executor, tls.TLSFiles(cert=b"CERT", key=b"KEY"))
    steps = list(dict.fromkeys(s for _, s, _ in executor.log if s != "run"))
    assert steps == ["tls: own certificate", "tls: HTTPS site"]
    assert not any("certbot" in line for _, _, line in executor.log)
    assert any(
        line == "write /etc/flaskr/tls/privkey.pem.deploy-new 0600 (secret)" for _, _, line in executor.log
    )


def test_a_failing_host_stops_before_the_https_site() -> None:
    cfg = config(ACME)
    executor = ScriptedHosts()
    executor.fail[("10.0.0.2", "tls: certificate")] = "Challenge failed for domain flaskr.example.com"
    with pytest.raises(certs.CertsError, match=r"(?s)10\.0\.0\.2: tls: certificate.*Challenge failed"):
        install(cfg, executor)
    assert not any(s == "tls: HTTPS site" for _, s, _ in executor.log)


# --- certificates ---------------------------------------------------------------------------------


def make_certificate(
    names: list[str], not_after: datetime.datetime, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[bytes, bytes]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=90))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def test_days_left_from_pem_and_der() -> None:
    pem, _ = make_certificate(["a.example.com"], NOW + datetime.timedelta(days=30, hours=1))
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert tls.certificate_days_left(pem, NOW) == 30
    assert tls.certificate_days_left(der, NOW) == 30
    assert tls.certificate_days_left(pem, NOW + datetime.timedelta(days=31)) == -1


def test_days_left_rejects_garbage_and_naive_time() -> None:
    with pytest.raises(tls.TLSError):
        tls.certificate_days_left(b"not a certificate", NOW)
    pem, _ = make_certificate(["a.example.com"], NOW + datetime.timedelta(days=3))
    with pytest.raises(tls.TLSError):
        tls.certificate_days_left(pem, NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("days", "ok", "text"),
    [
        (60, True, "expires in 60 day"),
        (21, True, "expires in 21 day"),
        (20, False, "renewal is failing"),
        (-2, False, "expired 2 day"),
    ],
)
def test_expiry_warning_well_before_the_end(days: int, ok: bool, text: str) -> None:
    good, message = tls.expiry_message(days)
    assert good is ok and text in message


def test_own_certificate_checks() -> None:
    cfg = config("{cert: c.pem, key: k.pem}", domains="[shop.example.com, www.shop.example.com]")
    pem, key = make_certificate(
        ["shop.example.com", "www.shop.example.com"], NOW + datetime.timedelta(days=40)
    )
    assert tls.check_own_certificate(cfg, tls.TLSFiles(cert=pem, key=key), NOW) == []
    wildcard, wkey = make_certificate(
        ["shop.example.com", "*.shop.example.com"], NOW + datetime.timedelta(days=40)
    )
    assert tls.check_own_certificate(cfg, tls.TLSFiles(cert=wildcard, key=wkey), NOW) == []
    _, other_key = make_certificate(["x.example.com"], NOW)
    problems = tls.check_own_certificate(cfg, tls.TLSFiles(cert=pem, key=other_key), NOW)
    assert problems == ["tls.key does not belong to the certificate in tls.cert"]
    old, old_key = make_certificate(["shop.example.com"], NOW - datetime.timedelta(days=2))
    problems = tls.check_own_certificate(cfg, tls.TLSFiles(cert=old, key=old_key), NOW)
    assert "tls.cert expired 2 day(s) ago" in problems
    assert any("does not cover www.shop.example.com" in p for p in problems)


# --- the CLI ------------------------------------------------------------------------------------------


def deploy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_certs_with_tls_false_says_so(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: api, wsgi: 'api:app'}\n"
        "server: {domains: [api.internal], hosts: [10.0.0.9], tls: false}\n"
    )
    out = deploy("certs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tls is false" in out.stdout


def test_certs_names_file_line_and_key_of_a_missing_certificate(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: shop, wsgi: 'shop:app'}\n"
        "server:\n"
        "  domains: [shop.example.com]\n"
        "  hosts: [10.0.0.9]\n"
        "  tls:\n"
        "    cert: certs/missing.pem\n"
        "    key: certs/missing-key.pem\n"
    )
    out = deploy("certs", cwd=tmp_path)
    assert out.returncode == 2
    assert "deploy.yaml:6: server.tls.cert: cannot read" in out.stderr
    assert "deploy.yaml:7: server.tls.key: cannot read" in out.stderr
    assert "Traceback" not in out.stderr


def test_certs_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    pem, _ = make_certificate(["shop.example.com"], datetime.datetime.now(UTC) + datetime.timedelta(days=40))
    _, other = make_certificate(["x.example.com"], datetime.datetime.now(UTC) + datetime.timedelta(days=40))
    (tmp_path / "c.pem").write_bytes(pem)
    (tmp_path / "k.pem").write_bytes(other)
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: shop, wsgi: 'shop:app'}\n"
        "server: {domains: [shop.example.com], hosts: [10.0.0.9], tls: {cert: c.pem, key: k.pem}}\n"
    )
    out = deploy("certs", cwd=tmp_path)
    assert out.returncode == 2
    assert "server.tls.cert: tls.key does not belong to the certificate" in out.stderr
    assert "PRIVATE KEY" not in out.stderr + out.stdout
