"""`deploy sandbox up` rehearses the whole deploy, HTTPS included: the example app, unedited, gets a real
certificate from the sandbox's own ACME server (pebble) under -e sandbox, and `down` leaves nothing.

Everything runs as a user would: `deploy sandbox up`, `deploy setup -e sandbox`, `deploy push -e sandbox`
and `deploy sandbox down` as subprocesses, on a private sandbox (the session's shared hosts keep
Nginx's default site for test_sandbox.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from deploy.config.loader import load
from deploy.sandbox import acme as sandbox_acme
from deploy.sandbox.machines import Sandbox

from . import https_graders as graders
from .pebble import require_pebble

pytestmark = pytest.mark.hosts

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "flaskr.example.com"  # playbooks/flaskr/deploy.yaml, as shipped
PORTS = (
    sandbox_acme.API_PORT,
    sandbox_acme.MANAGEMENT_PORT,
    sandbox_acme.DNS_PORT,
    sandbox_acme.CHALLTESTSRV_MANAGEMENT_PORT,
)


def deploy(
    *args: str, state: Path, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), "DEPLOY_SANDBOX_DIR": str(state), **(env or {})},
        check=False,
    )
    print(f"$ deploy {' '.join(args)}  (exit {out.returncode})\n{out.stdout}{out.stderr}")
    return out


def traces(state: Path) -> list[str]:
    """Processes of this sandbox's ACME server, found without the sandbox module: cwd or argv in `state`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(os.getpid()):
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if status != "Z" and (cwd.startswith(str(state)) or str(state) in argv):
            found.append(f"process {proc.name}: {argv}")
    return found


def listeners(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP and UDP socket the processes `pids` listen on, from `ss`."""
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & set(pids):
            local = line.split()[4]
            address, _, port = local.rpartition(":")
            found.add((address, int(port)))
    return found


@dataclass
class Rehearsal:
    state: Path
    project: Path
    up: subprocess.CompletedProcess[str]
    setup: subprocess.CompletedProcess[str]
    push: subprocess.CompletedProcess[str]
    hosts: list[tuple[str, str]]
    acme: sandbox_acme.AcmeServer


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    """The README quickstart on two hosts: up, cd playbooks/flaskr (a git copy), setup, push."""
    require_pebble()
    state = tmp_path_factory.mktemp("acme-sandbox") / "state"
    project = tmp_path_factory.mktemp("acme-project") / "flaskr"
    shutil.copytree(
        REPO / "playbooks" / "flaskr",
        project,
        ignore=shutil.ignore_patterns("__pycache__", "instance", ".env"),
    )
    for argv in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "example app"],
    ):
        subprocess.run(["git", *argv], cwd=project, check=True, capture_output=True)
    up = deploy("sandbox", "up", "--hosts", "2", state=state, timeout=900)
    try:
        assert up.returncode == 0, up.stderr
        hosts = [(line.split("\t")[0], line.split("\t")[1]) for line in up.stdout.splitlines()]
        acme = Sandbox(state).acme()
        assert acme is not None
        secret = {"SECRET_KEY": secrets.token_hex(32)}
        setup = deploy("setup", "-e", "sandbox", state=state, cwd=project, env=secret)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        push = deploy("push", "-e", "sandbox", state=state, cwd=project, env=secret)
        assert push.returncode == 0, push.stdout + push.stderr
        yield Rehearsal(state, project, up, setup, push, hosts, acme)
    finally:
        deploy("sandbox", "down", state=state)


def test_up_says_where_the_acme_server_is_and_how_to_verify_a_site(rehearsal: Rehearsal) -> None:
    acme, first = rehearsal.acme, rehearsal.hosts[0][1]
    assert acme.listen == re.sub(r"\.2$", ".1", first)  # this machine's side of the first host's veth
    assert acme.default_address == first
    assert f"HTTPS: pebble, a local ACME server at https://{acme.listen}:14000/dir" in rehearsal.up.stderr
    assert (
        f"curl --cacert {rehearsal.state}/acme/root.pem --resolve DOMAIN:443:{first} https://DOMAIN/"
        in rehearsal.up.stderr
    )
    environment = (rehearsal.state / "environment.yaml").read_text()
    assert f"acme:\n  server: https://{acme.listen}:14000/dir\n" in environment
    assert f"  ca_bundle: {rehearsal.state}/acme/ca-bundle.pem\n" in environment


def test_the_unedited_example_app_gets_a_certificate_on_every_host(rehearsal: Rehearsal) -> None:
    out = rehearsal.setup.stdout
    assert f"ACME account at {rehearsal.acme.directory}" in out
    assert f"HTTPS is set up for {DOMAIN} on 2 host(s)." in out
    root = rehearsal.state / "acme" / "root.pem"
    for _, address in rehearsal.hosts:
        assert (
            f"{address}: serving /etc/letsencrypt/live/{DOMAIN}/fullchain.pem, valid for 89 more days" in out
        )
        der = graders.served_certificate(DOMAIN, address, root)  # verifies the chain and the name
        cert = x509.load_der_x509_certificate(der)
        assert "Pebble" in cert.issuer.rfc4514_string()
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime.days <= 90


def test_the_site_answers_over_https_verified_by_pebbles_root(rehearsal: Rehearsal) -> None:
    root = rehearsal.state / "acme" / "root.pem"
    assert "is live on" in rehearsal.push.stdout
    for _, address in rehearsal.hosts:
        status, _, body = graders.https_get(DOMAIN, address, root, "/health")
        assert status == 200, body[:300]
        assert json.loads(body)["status"] == "ok"
        # The README's curl line, as printed by `up`.
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "--cacert",
                str(root),
                "--resolve",
                f"{DOMAIN}:443:{address}",
                f"https://{DOMAIN}/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert curl.returncode == 0, curl.stderr
        assert "<form" in curl.stdout
    # Without pebble's root the certificate is not trusted: it is not a certificate from a public CA.
    context = ssl.create_default_context()
    with (
        socket.create_connection((rehearsal.hosts[0][1], 443), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(sock, server_hostname=DOMAIN)


def test_pebble_validated_the_challenges_on_the_first_hosts_port_80(rehearsal: Rehearsal) -> None:
    """Every name resolves to the first host for pebble; the second host's order is answered there too."""
    counts = []
    for name, _ in rehearsal.hosts:
        out = deploy(
            "sandbox", "ssh", name, "--", "sh", "-c",
            "cat /var/log/nginx/*access.log | grep -c Pebble-VA || true",
            state=rehearsal.state,
        )  # fmt: skip
        counts.append(int(out.stdout.strip() or 0))
    assert counts[0] >= 2  # one fresh authorization per host's order (no reuse, no always-valid)
    assert counts[1] == 0


def test_pebble_listens_only_on_the_sandbox_side_of_the_first_veth(rehearsal: Rehearsal) -> None:
    acme = rehearsal.acme
    assert sorted(sandbox_acme.processes(acme.workdir)) == sorted(acme.pids)
    found = listeners(acme.pids)
    assert {port for _, port in found} == set(PORTS)
    assert {address for address, _ in found} == {acme.listen}


def test_down_stops_pebble_and_leaves_nothing(rehearsal: Rehearsal) -> None:
    acme = rehearsal.acme
    assert traces(rehearsal.state)
    out = deploy("sandbox", "down", state=rehearsal.state)
    assert out.returncode == 0, out.stderr
    assert f"ACME server: stopped pebble (pids {', '.join(map(str, sorted(acme.pids)))})" in out.stderr
    assert traces(rehearsal.state) == []
    assert not rehearsal.state.exists()
    # (Its ports are not probed: another sandbox may already have claimed the freed network.)
    assert listeners(acme.pids) == set()


def test_the_session_sandbox_gives_acme_setups_its_pebble(sandbox: Sandbox) -> None:
    """The shared fixture's -e sandbox behaves as a user's: the example app's tls gets the ACME server."""
    require_pebble()
    acme = sandbox.acme()
    assert acme is not None
    config = load(REPO / "playbooks" / "flaskr" / "deploy.yaml", "sandbox")
    assert config.server.tls is not False
    assert (config.server.tls.acme_server, config.server.tls.ca_bundle) == (
        acme.directory,
        str(acme.bundle_file),
    )
    assert acme.bundle_file.read_bytes().endswith(acme.root_file.read_bytes())


# --- Without pebble, with --no-acme, and after a crash -------------------------------------------------


def path_without_pebble(directory: Path) -> str:
    """A PATH with every program of this machine's PATH except pebble's two."""
    directory.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith("pebble") or (directory / entry.name).exists():
                continue
            (directory / entry.name).symlink_to(entry.path)
    return str(directory)


def test_without_pebble_up_says_so_in_one_line_and_acme_sites_get_plain_http(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"PATH": path_without_pebble(tmp_path / "bin")}
    up = deploy("sandbox", "up", state=state, env=env)
    try:
        assert up.returncode == 0, up.stderr
        https = [line for line in up.stderr.splitlines() if line.startswith("HTTPS")]
        assert https == [
            "HTTPS: no certificates in this sandbox: pebble, pebble-challtestsrv not installed "
            "(sudo apt-get install -y pebble); -e sandbox serves tls: {email} sites over HTTP"
        ]
        assert "acme: false" in (state / "environment.yaml").read_text()
        config = deploy("config", "-e", "sandbox", state=state, cwd=REPO / "playbooks" / "flaskr")
        assert config.returncode == 0, config.stderr
        assert "tls: false" in config.stdout
        assert not (state / "acme").exists()
    finally:
        deploy("sandbox", "down", state=state)
    assert traces(state) == []


def test_no_acme_starts_no_acme_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = deploy("sandbox", "up", "--no-acme", state=state)
    try:
        assert up.returncode == 0, up.stderr
        assert "HTTPS: --no-acme: no ACME server" in up.stderr
        assert Sandbox(state).acme() is None
        assert not (state / "acme").exists()
        listing = json.loads(deploy("sandbox", "list", "--json", state=state).stdout)
        assert listing["acme"] is None
    finally:
        deploy("sandbox", "down", state=state)
    assert traces(state) == []


def test_down_finds_pebble_after_the_state_is_lost(tmp_path: Path) -> None:
    require_pebble()
    state = tmp_path / "state"
    box = Sandbox(state)
    try:
        box.up(1)
        acme = box.acme()
        assert acme is not None
        assert json.loads(deploy("sandbox", "list", "--json", state=state).stdout)["acme"] == {
            "directory": acme.directory,
            "root": str(acme.root_file),
            "ca_bundle": str(acme.bundle_file),
        }
        (state / "state.json").unlink()  # down must find pebble by scanning, as after a crash
        assert any("(the ACME server)" in item for item in box.leftovers())
        out = deploy("sandbox", "down", state=state)
        assert out.returncode == 0, out.stderr
        assert "ACME server: stopped pebble" in out.stderr
        assert traces(state) == []
        assert listeners(acme.pids) == set()
    finally:
        box.down()


def test_a_failed_up_stops_pebble_too(tmp_path: Path) -> None:
    require_pebble()
    state = tmp_path / "state"
    box = Sandbox(state)
    with pytest.raises(Exception, match="SSH did not answer"):
        box.up(1, timeout=0.001)
    assert traces(state) == []
    assert not (state / "acme").exists()


def test_stop_never_signals_a_process_that_is_not_pebbles(tmp_path: Path) -> None:
    """A pid recorded in the state but reused by another process is left alone."""
    other = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        assert sandbox_acme.stop(tmp_path / "acme", [other.pid], timeout=1) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
