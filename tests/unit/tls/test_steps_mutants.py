"""HTTPS setup over hosts (deploy.certs): what it says, what it returns, and how it reports a failure,
checked exactly (benchmarks/mutation.py: certs and tls)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.model import TLS, Config
from deploy.plan import Command, Step, Upload
from deploy.remote.commands import make_dir, nginx_change
from deploy.remote.executor import StepResult
from deploy.remote.facts import HostFacts
from deploy.render.render import render
from deploy.tls import certs
from deploy.tls import steps as tls
from tests.unit.tls.test_steps import (
    ACME,
    CA_FILES,
    PEBBLE,
    RFC7638_KEY,
    ScriptedHosts,
    account_output,
    config,
)

pytestmark = pytest.mark.unit

HOSTS = ["10.0.0.1", "10.0.0.2"]


class Hosts(ScriptedHosts):
    """ScriptedHosts that records run() timeouts, can fail reading the account, and can fail one step
    with a given exit code and output."""

    def __init__(self, with_certificate: frozenset[str] = frozenset()) -> None:
        super().__init__(with_certificate=with_certificate)
        self.timeouts: list[float | None] = []
        self.runs: list[tuple[str, str]] = []
        self.account_code = 0
        self.step_failure: tuple[str, str, StepResult] | None = None

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        self.timeouts.append(timeout)
        self.runs.append((host, command.argv[0]))
        code, output = super().run(host, command, timeout)
        if command.argv[0] == "python3" and self.account_code:
            return self.account_code, "private key material"
        return code, output

    def run_step(self, host: str, step: Step) -> StepResult:
        # A step is built for the host it runs on: the Step names that host too.
        assert step.host == host, (step.name, step.host, host)
        result = super().run_step(host, step)
        if self.step_failure and (host, step.name) == self.step_failure[:2]:
            return self.step_failure[2]
        return result


#: Each host's facts differ (its core count), so a site rendered from the wrong host's facts shows.
FACTS = {h: HostFacts(cores=i + 2) for i, h in enumerate(HOSTS)}


def _install(
    executor: Hosts,
    cfg_yaml: str = ACME,
    hosts: list[str] | None = None,
    rendered_for: list[HostFacts] | None = None,
) -> tuple[certs.CertsOutcome, list[str]]:
    cfg = config(cfg_yaml)
    said: list[str] = []
    files = CA_FILES if "acme_server" in cfg_yaml else tls.TLSFiles(cert=b"CERT", key=b"KEY")
    seen = [] if rendered_for is None else rendered_for

    def rendering(facts: HostFacts) -> dict[str, str]:
        seen.append(facts)
        return render(cfg, facts)

    outcome = certs.install_certificates(
        cfg,
        executor,
        HOSTS if hosts is None else hosts,
        files,
        FACTS,
        rendering,
        say=said.append,
        parallel=False,
    )
    return outcome, said


def test_acme_setup_says_each_stage_and_reports_every_host_ok() -> None:
    executor = Hosts(with_certificate=frozenset({"10.0.0.2"}))
    outcome, said = _install(executor)
    assert said == [
        "Nginx site with the ACME challenge path on every host",
        "certbot: webroot, renewal hook, systemd timer",
        f"ACME account at {PEBBLE} (registered once on 10.0.0.1, shared with every host)",
        "certbot certonly for flaskr.example.com, www.flaskr.example.com on each host",
        "HTTPS site",
    ]
    assert outcome.results == {"10.0.0.1": None, "10.0.0.2": None}
    assert outcome.had_certificate == ["10.0.0.2"]
    assert outcome.ok and outcome.failed() == {}
    # Asking whether a certificate exists and reading the account: bounded, one minute each.
    assert executor.timeouts == [60, 60, 60]
    assert executor.runs == [("10.0.0.1", "test"), ("10.0.0.2", "test"), ("10.0.0.1", "python3")]
    # Every host obtains its certificate with the shared account.
    certonly = [line for _, step, line in executor.log if step == "tls: certificate"]
    assert len(certonly) == 2 and all(f"--account {ACCOUNT}" in line for line in certonly)


def test_each_host_s_site_is_rendered_from_its_own_facts_and_what_it_has() -> None:
    seen: list[HostFacts] = []
    _install(Hosts(with_certificate=frozenset({"10.0.0.2"})), rendered_for=seen)
    first, second = (FACTS[h] for h in HOSTS)
    assert [(f.cores, f.has_certificate) for f in seen] == [
        (first.cores, False),
        (second.cores, True),
        (first.cores, True),
        (second.cores, True),
    ]


def test_a_host_without_gathered_facts_renders_with_the_defaults() -> None:
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    seen: list[HostFacts] = []

    def rendering(facts: HostFacts) -> dict[str, str]:
        seen.append(facts)
        return render(cfg, facts)

    outcome = certs.install_certificates(
        cfg, Hosts(), ["10.0.0.9"], tls.TLSFiles(cert=b"C", key=b"K"), {}, rendering, parallel=False
    )
    assert outcome.ok and seen == [HostFacts(has_certificate=True)]
    steps = certs.planned_steps(cfg, ["10.0.0.9"], tls.TLSFiles(cert=b"C", key=b"K"), {}, rendering)
    assert len(steps) == 2 and seen[-1] == HostFacts(has_certificate=True)


def test_failures_on_several_hosts_are_one_error_a_line_each() -> None:
    executor = Hosts()
    executor.fail[("10.0.0.1", "tls: certificate")] = "one"
    executor.fail[("10.0.0.2", "tls: certificate")] = "two"
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    assert str(raised.value) == (
        "10.0.0.1: tls: certificate: tls: certificate (exit 1)\none\n"
        "10.0.0.2: tls: certificate: tls: certificate (exit 1)\ntwo"
    )


def test_own_certificate_setup_says_so() -> None:
    outcome, said = _install(Hosts(), "{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    assert said == [
        "uploading your certificate and key (key mode 0600)",
        "HTTPS site, with that certificate and key",
    ]
    assert outcome.ok and outcome.had_certificate == []


def test_tls_false_says_there_is_nothing_to_do() -> None:
    outcome, said = _install(Hosts(), "false")
    assert said == ["tls is false: this app is served over plain HTTP; nothing to do"]
    assert not outcome.ok and outcome.results == {}


def test_no_host_is_an_error_not_an_empty_success() -> None:
    with pytest.raises(certs.CertsError, match=r"^server\.hosts is empty: no host to set up$"):
        _install(Hosts(), hosts=[])


def test_an_unreadable_account_stops_with_its_exit_code_and_never_its_output() -> None:
    executor = Hosts()
    executor.account_code = 3
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    assert str(raised.value) == "10.0.0.1: could not read certbot's ACME account (exit 3)"
    assert not any(step == "tls: share the ACME account" for _, step, _ in executor.log)


def test_a_failed_step_names_host_step_command_exit_code_and_the_last_eight_lines() -> None:
    executor = Hosts()
    output = "\n".join(f"line {i}" for i in range(1, 11)) + "\n\n"
    executor.step_failure = (
        "10.0.0.2",
        "tls: certificate",
        StepResult("10.0.0.2", "tls: certificate", False, 0.0, output, "certbot certonly", 7),
    )
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    tail = "\n".join(f"line {i}" for i in range(3, 11))
    assert str(raised.value) == f"10.0.0.2: tls: certificate: certbot certonly (exit 7)\n{tail}"
    assert not any(step == "tls: HTTPS site" for _, step, _ in executor.log)


def test_a_failed_step_without_a_command_or_output_says_failed() -> None:
    executor = Hosts()
    executor.step_failure = (
        "10.0.0.1",
        "tls: HTTPS site",
        StepResult("10.0.0.1", "tls: HTTPS site", False, 0.0, "  \n", None, 2),
    )
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    assert str(raised.value) == "10.0.0.1: tls: HTTPS site: failed (exit 2)"


def test_the_outcome_lists_only_failed_hosts_and_is_not_ok_when_empty() -> None:
    outcome = certs.CertsOutcome({"a": None, "b": "no"})
    assert outcome.failed() == {"b": "no"}
    assert not outcome.ok
    assert not certs.CertsOutcome().ok
    assert certs.CertsOutcome({"a": None}).ok


def test_the_dry_run_plan_names_every_step_on_every_host_in_order() -> None:
    cfg = config(ACME)
    facts = {"10.0.0.1": HostFacts(cores=2), "10.0.0.2": HostFacts(cores=3, has_certificate=True)}
    seen: list[HostFacts] = []

    def rendering(f: HostFacts) -> dict[str, str]:
        seen.append(f)
        return render(cfg, f)

    steps = certs.planned_steps(cfg, HOSTS, CA_FILES, facts, rendering)
    # The site before certbot: HTTPS only where the certificate already is; then HTTPS everywhere.
    assert [(f.cores, f.has_certificate) for f in seen] == [(2, False), (3, True), (2, True), (3, True)]
    assert [(s.name, s.host) for s in steps] == [
        ("tls: site before certbot", "10.0.0.1"),
        ("tls: site before certbot", "10.0.0.2"),
        ("tls: prepare certbot", "10.0.0.1"),
        ("tls: prepare certbot", "10.0.0.2"),
        ("tls: ACME account", "10.0.0.1"),
        ("tls: share the ACME account", "10.0.0.1"),
        ("tls: share the ACME account", "10.0.0.2"),
        ("tls: certificate", "10.0.0.1"),
        ("tls: certificate", "10.0.0.2"),
        ("tls: HTTPS site", "10.0.0.1"),
        ("tls: HTTPS site", "10.0.0.2"),
    ]
    share = steps[6].actions
    folder = tls.account_dir(PEBBLE)
    assert share == (
        Command(
            ("true",),
            f"copy meta.json, regr.json, private_key.json (0400) of the account in {folder} from 10.0.0.1",
        ),
    )
    acme = tls.tls_settings(cfg)
    assert acme is not None and steps[7] == tls.obtain_step(cfg, "10.0.0.1", acme, None)


def test_the_dry_run_plan_is_empty_without_tls_or_hosts_and_short_with_an_own_certificate() -> None:
    cfg = config(ACME)
    assert certs.planned_steps(cfg, [], CA_FILES, {}, lambda f: render(cfg, f)) == []
    plain = config("false")
    assert certs.planned_steps(plain, HOSTS, CA_FILES, {}, lambda f: render(plain, f)) == []
    own = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    files = tls.TLSFiles(cert=b"CERT", key=b"KEY")
    steps = certs.planned_steps(own, HOSTS, files, {}, lambda f: render(own, f))
    assert [(s.name, s.host) for s in steps] == [
        ("tls: own certificate", "10.0.0.1"),
        ("tls: own certificate", "10.0.0.2"),
        ("tls: HTTPS site", "10.0.0.1"),
        ("tls: HTTPS site", "10.0.0.2"),
    ]


# --- deploy.tls: the commands and files each host gets ---------------------------------------------

ACCOUNT = "f30d743280e8f27740caab5774a39807"


def _settings(cfg_yaml: str = ACME) -> tuple[Config, TLS]:
    cfg = config(cfg_yaml)
    found = tls.tls_settings(cfg)
    assert found is not None
    return cfg, found


def test_certonly_against_a_private_acme_server_names_every_domain_the_account_and_trusts_its_ca() -> None:
    cfg, settings = _settings()
    command = tls.certonly_command(cfg, settings, ACCOUNT)
    assert command == Command(
        (
            "env",
            "REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem",
            "certbot",
            "certonly",
            "--webroot",
            "-w",
            "/var/lib/deploy/acme",
            "--cert-name",
            "flaskr.example.com",
            "-d",
            "flaskr.example.com",
            "-d",
            "www.flaskr.example.com",
            "--email",
            "ops@example.com",
            "--agree-tos",
            "--no-eff-email",
            "--non-interactive",
            "--server",
            PEBBLE,
            "--account",
            ACCOUNT,
            "--keep-until-expiring",
        ),
        "obtain the certificate for flaskr.example.com, www.flaskr.example.com (certbot --webroot)",
        sudo=True,
    )


def test_certonly_against_lets_encrypt_needs_no_ca_and_no_account() -> None:
    cfg, settings = _settings("{email: ops@example.com}")
    argv = tls.certonly_command(cfg, settings, None).argv
    assert argv[:2] == ("certbot", "certonly")
    assert "--account" not in argv and "env" not in argv
    assert argv[argv.index("--server") + 1] == tls.LETS_ENCRYPT


def test_register_may_fail_harmlessly_and_everything_else_is_checked() -> None:
    cfg, settings = _settings()
    command = tls.register_command(cfg, settings)
    assert command == Command(
        (
            "env",
            "REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem",
            "certbot",
            "register",
            "--non-interactive",
            "--agree-tos",
            "--no-eff-email",
            "--email",
            "ops@example.com",
            "--server",
            PEBBLE,
        ),
        "register the ACME account (once; an existing account is kept)",
        sudo=True,
        check=False,
    )
    assert tls.register_step(cfg, "h", settings) == Step("tls: ACME account", "h", (command,))
    has = tls.has_certificate_command(cfg)
    cert, key = tls.certificate_files(cfg)
    assert has == Command(
        ("test", "-s", cert, "-a", "-s", key), "is the certificate there?", sudo=True, check=False
    )
    assert tls.read_certificate_command(cfg) == Command(("cat", cert), "read the certificate", sudo=True)
    assert tls.reload_nginx_commands() == (
        Command(("nginx", "-t", "-q"), "check the Nginx configuration", sudo=True),
        Command(("systemctl", "reload", "nginx"), "reload Nginx (graceful)", sudo=True),
    )
    assert tls.reload_step("h") == Step("tls: reload Nginx", "h", tls.reload_nginx_commands())


def test_the_account_reader_prints_the_one_account_folder_parse_account_reads(tmp_path: Path) -> None:
    cfg, settings = _settings()
    command = tls.show_account_command(cfg, settings)
    assert command.sudo and command.argv[0] == "python3" and command.argv[-1] == tls.account_dir(PEBBLE)
    folder = tmp_path / "accounts"
    (folder / ACCOUNT).mkdir(parents=True)
    (folder / "not-a-folder").write_text("x")
    texts = {"meta.json": "{}", "regr.json": "{}", "private_key.json": json.dumps(RFC7638_KEY)}
    for name, text in texts.items():
        (folder / ACCOUNT / name).write_text(text)
    argv = [sys.executable, *command.argv[1:-1], str(folder)]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    account = tls.parse_account(PEBBLE, output)
    assert account.account_id == ACCOUNT and set(account.files) == set(texts)
    assert json.loads(account.files["private_key.json"]) == RFC7638_KEY


@pytest.mark.parametrize(
    ("server", "folder"),
    [
        ("https://acme-v02.api.letsencrypt.org/directory", "acme-v02.api.letsencrypt.org/directory"),
        ("https://10.87.1.1:14000/dir/", "10.87.1.1:14000/dir"),
        ("https://ca.example", "ca.example"),
    ],
)
def test_account_folders_follow_certbot(server: str, folder: str) -> None:
    assert tls.account_dir(server) == f"/etc/letsencrypt/accounts/{folder}"


def test_the_prepare_step_writes_each_file_with_its_owner_and_mode() -> None:
    cfg, settings = _settings()
    step = tls.acme_prepare_step(cfg, "h", settings, CA_FILES)
    assert step.name == "tls: prepare certbot" and step.host == "h"
    shown: list[tuple[object, ...]] = []
    for a in step.actions:
        if isinstance(a, Upload):
            shown.append((a.remote_path, a.mode, a.owner, a.group, a.sensitive))
        else:
            shown.append(a.argv[-4:] if a.argv[0] == "python3" else a.argv)
    assert shown == [
        ("/var/lib/deploy/acme", "root", "root", "0755"),
        ("/etc/letsencrypt/renewal-hooks/deploy", "root", "root", "0755"),
        ("/etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload", 0o755, "root", "root", False),
        ("/etc/flaskr/tls", "root", "root", "0755"),
        ("/etc/flaskr/tls/acme-ca.pem", 0o644, "root", "root", False),
        ("/etc/systemd/system/certbot.service.d", "root", "root", "0755"),
        ("/etc/systemd/system/certbot.service.d/flaskr-acme-ca.conf", 0o644, "root", "root", False),
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "--now", "certbot.timer"),
    ]
    contents = {a.remote_path: a.content for a in step.actions if isinstance(a, Upload)}
    assert contents["/etc/flaskr/tls/acme-ca.pem"] == b"PEM"
    assert (
        contents["/etc/systemd/system/certbot.service.d/flaskr-acme-ca.conf"]
        .decode()
        .endswith("[Service]\nEnvironment=REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem\n")
    )
    hook = contents["/etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload"].decode()
    assert hook.startswith("#!/bin/sh\n") and hook.endswith(
        'set -eu\n[ "${RENEWED_LINEAGE:-}" = /etc/letsencrypt/live/flaskr.example.com ] || exit 0\n'
        "nginx -t -q\nsystemctl reload nginx\n"
    )
    with pytest.raises(tls.TLSError, match=r"^tls\.ca_bundle is set but its content was not read$"):
        tls.acme_prepare_step(cfg, "h", settings, tls.TLSFiles())
    plain_cfg, plain = _settings("{email: ops@example.com}")
    plain_step = tls.acme_prepare_step(plain_cfg, "h", plain, tls.TLSFiles())
    assert len(plain_step.actions) == 4  # no CA folder, bundle, drop-in or daemon-reload


def test_sharing_the_account_keeps_its_key_root_only_and_secret() -> None:
    cfg, _ = _settings()
    account = tls.parse_account(PEBBLE, account_output([ACCOUNT], RFC7638_KEY))
    step = tls.share_account_step(cfg, "h", account)
    folder = f"{tls.account_dir(PEBBLE)}/{ACCOUNT}"
    first = step.actions[0]
    assert isinstance(first, Command) and first.argv[-4:] == (folder, "root", "root", "0700")
    uploads = [
        (a.remote_path, a.mode, a.sensitive, a.description)
        for a in step.actions[1:4]
        if isinstance(a, Upload)
    ]
    assert uploads == [
        (f"{folder}/meta.json", 0o644, False, "ACME account meta.json"),
        (f"{folder}/regr.json", 0o644, False, "ACME account regr.json"),
        (f"{folder}/private_key.json", 0o400, True, "the ACME account key"),
    ]
    assert step.name == "tls: share the ACME account"
    settings = tls.tls_settings(cfg)
    assert settings is not None
    (obtain,) = tls.obtain_step(cfg, "h", settings, account).actions
    assert isinstance(obtain, Command) and obtain.argv[-3:-1] == ("--account", ACCOUNT)


def test_the_challenge_answer_is_token_dot_thumbprint() -> None:
    cfg = config(ACME)
    thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    snippet = tls.challenge_snippet(cfg, thumb)
    assert snippet.endswith(
        'location ~ "^/\\.well-known/acme-challenge/([-_A-Za-z0-9]{1,128})$" {\n'
        "    default_type text/plain;\n"
        f'    return 200 "$1.{thumb}";\n'
        "}\n"
    )
    for bad in (thumb[:-1], thumb + "A", thumb[:-1] + "="):
        with pytest.raises(tls.TLSError) as raised:
            tls.challenge_snippet(cfg, bad)
        assert str(raised.value) == f"not an ACME account key thumbprint: {bad!r}"
    assert tls.challenge_snippet_path(cfg) == "/etc/nginx/snippets/flaskr-acme-stateless.conf"


def test_a_key_missing_a_member_is_refused_by_name() -> None:
    with pytest.raises(tls.TLSError) as raised:
        tls.jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "a"})
    assert str(raised.value) == "the ACME account key lacks its 'y' member"
    with pytest.raises(tls.TLSError) as raised:
        tls.jwk_thumbprint({"kty": 3})
    assert str(raised.value) == "unsupported ACME account key type 3"


def test_an_own_certificate_is_uploaded_chain_public_key_0600_and_secret() -> None:
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    step = tls.own_certificate_step(cfg, "h", tls.TLSFiles(cert=b"C", key=b"K"))
    cert, key = tls.certificate_files(cfg)
    uploads = [
        (a.remote_path, a.content, a.mode, a.owner, a.sensitive)
        for a in step.actions[1:]
        if isinstance(a, Upload)
    ]
    assert uploads == [
        (f"{cert}.deploy-new", b"C", 0o644, "root", False),
        (f"{key}.deploy-new", b"K", 0o600, "root", True),
    ]
    with pytest.raises(tls.TLSError, match=r"^tls\.cert and tls\.key were not read$"):
        tls.own_certificate_step(cfg, "h", tls.TLSFiles(cert=b"C"))
    with pytest.raises(tls.TLSError, match=r"^tls is false: this app serves no certificate$"):
        tls.certificate_files(config("false"))


RENEWAL_FAILING = (
    "certbot renews at 30 days left, so renewal is failing: see 'journalctl -u certbot' on the host"
)


@pytest.mark.parametrize(
    ("days", "ok", "message"),
    [
        (-3, False, "the certificate expired 3 day(s) ago"),
        (0, False, "the certificate expires in 0 day(s); " + RENEWAL_FAILING),
        (20, False, "the certificate expires in 20 day(s); " + RENEWAL_FAILING),
        (21, True, "the certificate expires in 21 day(s)"),
    ],
)
def test_expiry_messages(days: int, ok: bool, message: str) -> None:
    assert tls.expiry_message(days) == (ok, message)


def test_an_own_certificate_step_is_exactly_a_root_folder_then_the_two_files() -> None:
    cfg = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    cert, key = tls.certificate_files(cfg)
    step = tls.own_certificate_step(cfg, "h", tls.TLSFiles(cert=b"C", key=b"K"))
    assert step == Step(
        "tls: own certificate",
        "h",
        (
            make_dir("/etc/flaskr/tls", "root", "root", 0o755, "the app's TLS folder"),
            Upload(
                f"{cert}.deploy-new", b"C", mode=0o644, owner="root", group="root",
                description="certificate chain (staged)",
            ),
            Upload(
                f"{key}.deploy-new", b"K", mode=0o600, owner="root", group="root", sensitive=True,
                description="private key (0600, staged)",
            ),
        ),
    )


def test_the_shared_account_files_are_root_s_with_their_descriptions() -> None:
    cfg = config(ACME)
    account = tls.parse_account(PEBBLE, account_output([ACCOUNT], RFC7638_KEY))
    step = tls.share_account_step(cfg, "h", account)
    folder = f"{tls.account_dir(PEBBLE)}/{ACCOUNT}"
    assert step.actions[:4] == (
        make_dir(folder, "root", "root", 0o700, "certbot's account folder"),
        Upload(f"{folder}/meta.json", account.files["meta.json"], mode=0o644, owner="root", group="root",
               description="ACME account meta.json"),
        Upload(f"{folder}/regr.json", account.files["regr.json"], mode=0o644, owner="root", group="root",
               description="ACME account regr.json"),
        Upload(f"{folder}/private_key.json", account.files["private_key.json"], mode=0o400, owner="root",
               group="root", sensitive=True, description="the ACME account key"),
    )
    snippet = tls.challenge_snippet(cfg, account.thumbprint).encode()
    assert step.actions[4:] == tuple(
        nginx_change([(tls.challenge_snippet_path(cfg), snippet, "answer ACME challenges on this host")])
    )


def test_the_prepare_step_is_exactly_folders_hook_ca_drop_in_and_timer() -> None:
    cfg = config(ACME)
    settings = tls.tls_settings(cfg)
    assert settings is not None
    step = tls.acme_prepare_step(cfg, "h", settings, CA_FILES)
    dropin = "/etc/systemd/system/certbot.service.d/flaskr-acme-ca.conf"
    assert step.actions == (
        make_dir("/var/lib/deploy/acme", "root", "root", 0o755, "the ACME webroot"),
        make_dir(
            "/etc/letsencrypt/renewal-hooks/deploy", "root", "root", 0o755, "certbot's deploy hook folder"
        ),
        Upload("/etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload",
               tls.deploy_hook_script(cfg).encode(), mode=0o755, owner="root", group="root",
               description="renewal hook: nginx -t, then reload"),
        make_dir("/etc/flaskr/tls", "root", "root", 0o755, "the app's TLS folder"),
        Upload("/etc/flaskr/tls/acme-ca.pem", b"PEM", mode=0o644, owner="root", group="root",
               description="the CA bundle of the ACME server"),
        make_dir(
            "/etc/systemd/system/certbot.service.d", "root", "root", 0o755, "certbot.service drop-in folder"
        ),
        Upload(dropin, tls.certbot_dropin(cfg).encode(), mode=0o644, owner="root", group="root",
               description="renewals trust that CA too"),
        Command(("systemctl", "daemon-reload"), "load the certbot.service drop-in", sudo=True),
        Command(
            ("systemctl", "enable", "--now", "certbot.timer"), "renewal: certbot's systemd timer", sudo=True
        ),
    )
