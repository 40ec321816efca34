"""-e sandbox and the sandbox's ACME server: the overlay's `acme` section reaches only an ACME tls."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploy.config.loader import ConfigError, load, load_text
from deploy.config.model import TLS
from deploy.sandbox.acme import AcmeServer, overlay_section
from deploy.sandbox.machines import SandboxHost, environment_text

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]

BASE = """\
app: {{name: shop, wsgi: "shop:create_app()"}}
server:
  domains: [shop.example.com]
  hosts: [web1.example.com]
  ssh: {{port: 2222, proxy_jump: bastion.example.com}}
{tls}
"""

ACME = """\
acme:
  server: https://10.87.1.1:14000/dir
  ca_bundle: /state/acme/ca-bundle.pem
"""

SANDBOX = """\
server:
  hosts: [10.87.1.2, 10.87.2.2]
  ssh: {user: root, port: 22, key: /state/id_ed25519, known_hosts: /state/known_hosts, proxy_jump: null}
"""


@pytest.fixture
def sandbox_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    return tmp_path


def sandbox_load(state: Path, tls: str, overlay: str) -> TLS | bool:
    (state / "environment.yaml").write_text(overlay, encoding="utf-8")
    return load_text(BASE.format(tls=textwrap.indent(tls, "  ")), "deploy.yaml", "sandbox").server.tls


def acme(tls: TLS | bool) -> TLS:
    assert isinstance(tls, TLS), tls
    return tls


def test_acme_tls_gets_the_sandbox_acme_server_and_bundle(sandbox_dir: Path) -> None:
    tls = acme(sandbox_load(sandbox_dir, "tls: {email: ops@example.com}", SANDBOX + ACME))
    assert tls.email == "ops@example.com"
    assert tls.acme_server == "https://10.87.1.1:14000/dir"
    assert tls.ca_bundle == "/state/acme/ca-bundle.pem"


def test_the_sandbox_replaces_an_acme_server_the_hosts_cannot_reach(sandbox_dir: Path) -> None:
    tls = acme(
        sandbox_load(
            sandbox_dir,
            "tls:\n  email: ops@example.com\n"
            "  acme_server: https://acme-staging-v02.api.letsencrypt.org/directory\n"
            "  ca_bundle: certs/internal.pem\n",
            SANDBOX + ACME,
        )
    )
    assert tls.acme_server == "https://10.87.1.1:14000/dir"
    assert tls.ca_bundle == "/state/acme/ca-bundle.pem"


@pytest.mark.parametrize("section", [ACME, "acme: false\n"])
def test_tls_false_stays_false(sandbox_dir: Path, section: str) -> None:
    assert sandbox_load(sandbox_dir, "tls: false", SANDBOX + section) is False
    assert sandbox_load(sandbox_dir, "", SANDBOX + section) is False  # tls not given: false


@pytest.mark.parametrize("section", [ACME, "acme: false\n"])
def test_own_certificate_is_left_alone(sandbox_dir: Path, section: str) -> None:
    tls = acme(
        sandbox_load(sandbox_dir, "tls: {cert: certs/full.pem, key: certs/key.pem}", SANDBOX + section)
    )
    assert (tls.cert, tls.key, tls.acme_server, tls.ca_bundle) == (
        "certs/full.pem",
        "certs/key.pem",
        None,
        None,
    )


def test_without_an_acme_server_an_acme_tls_becomes_plain_http(sandbox_dir: Path) -> None:
    assert sandbox_load(sandbox_dir, "tls: {email: ops@example.com}", SANDBOX + "acme: false\n") is False


def test_an_overlay_without_an_acme_section_leaves_tls_as_written(sandbox_dir: Path) -> None:
    """A file written before the sandbox had an ACME server."""
    assert acme(sandbox_load(sandbox_dir, "tls: {email: ops@example.com}", SANDBOX)).acme_server is None


def test_the_rest_of_the_overlay_still_applies(sandbox_dir: Path) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + ACME, encoding="utf-8")
    config = load_text(BASE.format(tls="  tls: {email: ops@example.com}"), "deploy.yaml", "sandbox")
    assert [h.address for h in config.server.hosts] == ["10.87.1.2", "10.87.2.2"]
    assert (config.server.ssh.port, config.server.ssh.proxy_jump) == (22, None)
    assert config.server.domains == ["shop.example.com"]


def test_an_invalid_tls_is_still_reported_not_hidden(sandbox_dir: Path) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + "acme: false\n", encoding="utf-8")
    text = BASE.format(tls="  tls: {email: ops@example.com, cert: a.pem, key: b.pem}")
    with pytest.raises(ConfigError) as info:
        load_text(text, "deploy.yaml", "sandbox")
    assert "not both" in str(info.value)


@pytest.mark.parametrize(
    "section",
    [
        "acme: true\n",
        "acme: https://10.87.1.1:14000/dir\n",
        "acme: {server: https://10.87.1.1:14000/dir}\n",
        "acme: {server: https://x/dir, ca_bundle: /b.pem, email: a@b.c}\n",
        "acme: {server: '', ca_bundle: /b.pem}\n",
    ],
)
def test_a_broken_acme_section_names_the_sandbox_file_line_and_key(sandbox_dir: Path, section: str) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + section, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_text(BASE.format(tls="  tls: {email: ops@example.com}"), "deploy.yaml", "sandbox")
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{sandbox_dir / 'environment.yaml'}:4: acme: expected false or a mapping with server and "
        "ca_bundle; run 'deploy sandbox up' again to rewrite this file"
    )


def test_a_bad_acme_server_url_is_caught_by_the_tls_model(sandbox_dir: Path) -> None:
    overlay = SANDBOX + "acme: {server: 'http://10.87.1.1:14000/dir', ca_bundle: /b.pem}\n"
    (sandbox_dir / "environment.yaml").write_text(overlay, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_text(BASE.format(tls="  tls: {email: ops@example.com}"), "deploy.yaml", "sandbox")
    assert "an https:// ACME directory URL" in str(info.value)


def test_a_projects_own_sandbox_environment_wins(sandbox_dir: Path) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + ACME, encoding="utf-8")
    text = BASE.format(tls="  tls: {email: ops@example.com}") + "environments:\n  sandbox: {}\n"
    assert acme(load_text(text, "deploy.yaml", "sandbox").server.tls).acme_server is None


def test_other_environments_ignore_the_sandbox_file(sandbox_dir: Path) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + ACME, encoding="utf-8")
    text = BASE.format(tls="  tls: {email: ops@example.com}") + "environments:\n  staging: {}\n"
    assert acme(load_text(text, "deploy.yaml", "staging").server.tls).acme_server is None
    assert acme(load_text(text, "deploy.yaml").server.tls).acme_server is None


# --- What `deploy sandbox up` writes, read back by the loader ----------------------------------------

HOSTS = [
    SandboxHost(
        name=f"sandbox-{n}",
        address=f"10.87.{n}.2",
        gateway=f"10.87.{n}.1",
        netns=f"deploy-abcd-sandbox-{n}",
        veth=f"dsbabcd-{n}",
        machine_dir=f"/state/machines/sandbox-{n}",
        mode="overlay",
        key="/state/id_ed25519",
        known_hosts="/state/known_hosts",
        environment_file="/state/environment.yaml",
    )
    for n in (1, 2)
]
PEBBLE = AcmeServer(workdir="/state/acme", listen="10.87.1.1", default_address="10.87.1.2", pids=[1, 2])


def test_overlay_section_says_where_pebble_is() -> None:
    assert overlay_section(PEBBLE) == {
        "server": "https://10.87.1.1:14000/dir",
        "ca_bundle": "/state/acme/ca-bundle.pem",
    }
    assert overlay_section(None) is False


def test_the_example_app_gets_pebble_from_what_up_writes(sandbox_dir: Path) -> None:
    text = environment_text(HOSTS, Path("/state/id_ed25519"), Path("/state/known_hosts"), PEBBLE)
    assert "# acme: tls: {email: ...} gets its certificates from pebble" in text
    (sandbox_dir / "environment.yaml").write_text(text, encoding="utf-8")
    config = load(REPO / "playbooks" / "flaskr" / "deploy.yaml", "sandbox")
    assert [h.address for h in config.server.hosts] == ["10.87.1.2", "10.87.2.2"]
    tls = acme(config.server.tls)
    assert (tls.email, tls.acme_server, tls.ca_bundle) == (
        "ops@example.com",
        "https://10.87.1.1:14000/dir",
        "/state/acme/ca-bundle.pem",
    )


def test_without_pebble_what_up_writes_serves_the_example_app_over_http(sandbox_dir: Path) -> None:
    text = environment_text(HOSTS, Path("/state/id_ed25519"), Path("/state/known_hosts"), None)
    assert "acme: false" in text
    (sandbox_dir / "environment.yaml").write_text(text, encoding="utf-8")
    assert load(REPO / "playbooks" / "flaskr" / "deploy.yaml", "sandbox").server.tls is False


def test_cli_reports_a_broken_acme_section_with_exit_2(sandbox_dir: Path) -> None:
    (sandbox_dir / "environment.yaml").write_text(SANDBOX + "acme: [1]\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "config", "-e", "sandbox"],
        cwd=REPO / "playbooks" / "flaskr",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "DEPLOY_SANDBOX_DIR": str(sandbox_dir)},
        check=False,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{sandbox_dir / 'environment.yaml'}:4: acme: expected false or a mapping" in out.stderr
    assert "Traceback" not in out.stderr
