"""deploy setup: own TLS files are checked before any host is contacted; --dry-run lists the HTTPS steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import main
from deploy.config.loader import load_text
from deploy.plan import Command, Upload
from deploy.remote.facts import HostFacts
from deploy.render.render import render
from deploy.tls.certs import planned_steps
from deploy.tls.steps import TLSFiles

pytestmark = pytest.mark.unit

YAML = """\
app: {{name: shop, wsgi: "shop:app"}}
server:
  domains: [shop.example.com]
  # Loopback, port 1: nothing listens there, and setup must not even try.
  hosts: [{{address: 127.0.0.1, port: 1}}]
  tls: {tls}
"""


def test_missing_own_certificate_stops_setup_before_any_connection(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(YAML.format(tls="{cert: certs/full.pem, key: certs/key.pem}"))
    result = CliRunner().invoke(main, ["setup", "-c", str(tmp_path / "deploy.yaml")])
    assert result.exit_code == 2, result.output
    assert "server.tls.cert: cannot read" in result.output and "certs/full.pem" in result.output
    assert "cannot connect" not in result.output and "Traceback" not in result.output


def hosts_steps(tls: str, files: TLSFiles) -> list[tuple[str, str]]:
    config = load_text(YAML.format(tls=tls).replace("[{address: 127.0.0.1, port: 1}]", "[web1, web2]"))
    facts = {"web1": HostFacts(has_certificate=False), "web2": HostFacts(has_certificate=True)}
    steps = planned_steps(config, ["web1", "web2"], files, facts, lambda f: render(config, f))
    return [(s.name, s.host) for s in steps]


def test_dry_run_lists_the_acme_steps_in_setup_order() -> None:
    assert hosts_steps("{email: ops@example.com}", TLSFiles()) == [
        ("tls: site before certbot", "web1"),
        ("tls: site before certbot", "web2"),
        ("tls: prepare certbot", "web1"),
        ("tls: prepare certbot", "web2"),
        ("tls: ACME account", "web1"),
        ("tls: share the ACME account", "web1"),
        ("tls: share the ACME account", "web2"),
        ("tls: certificate", "web1"),
        ("tls: certificate", "web2"),
        ("tls: HTTPS site", "web1"),
        ("tls: HTTPS site", "web2"),
    ]


def test_dry_run_of_an_own_certificate_uploads_then_serves_https() -> None:
    files = TLSFiles(cert=b"-----BEGIN CERTIFICATE-----\n", key=b"-----BEGIN PRIVATE KEY-----\n")
    config = load_text(
        YAML.format(tls="{cert: c.pem, key: k.pem}").replace("[{address: 127.0.0.1, port: 1}]", "[w]")
    )
    steps = planned_steps(config, ["w"], files, {"w": HostFacts()}, lambda f: render(config, f))
    assert [s.name for s in steps][-1] == "tls: HTTPS site"
    uploads = [a for s in steps for a in s.actions if isinstance(a, Upload)]
    key = next(u for u in uploads if u.content == files.key)
    assert key.sensitive and key.mode == 0o600
    assert all(isinstance(a, (Command, Upload)) for s in steps for a in s.actions)


def test_no_tls_means_no_steps() -> None:
    assert hosts_steps("false", TLSFiles()) == []
