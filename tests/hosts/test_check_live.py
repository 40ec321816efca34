"""`deploy check --live` against real sandbox hosts running the example app (systemd, Nginx, SSH).

One private host over HTTP: set it up, push the example app, check it (clean), then break it the ways
the live checks look for (a hand edit, a readable secrets file, a stopped service) and check again.
Then two hosts with certificates from pebble (the fixtures of test_https.py): clean, then weakened TLS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from deploy.sandbox import Sandbox
from tests.hosts.pushkit import Project, make_project, private_sandbox
from tests.hosts.test_https import Site, app_deployed, issued, site  # noqa: F401 - shared HTTPS fixtures

pytestmark = pytest.mark.hosts

ENVIRONMENT = "live"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "check-live-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("check-live-project"), box.hosts())
    with (project.path / "deploy.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"environments:\n  {ENVIRONMENT}: {{}}\n")
    project.commit("an environment for deploy check --live")
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    return project


def live(project: Project) -> tuple[int, dict[str, list[str]], dict[str, str]]:
    out = project.deploy(
        "check", ".", "--live", "-e", ENVIRONMENT, "--select", "LIVE", "--format", "json", timeout=240
    )
    assert out.returncode in (0, 1), out.stderr
    doc = json.loads(out.stdout)
    found: dict[str, list[str]] = {}
    for f in doc["findings"]:
        found.setdefault(f["id"], []).append(f["message"])
    return out.returncode, found, {s["id"]: s["reason"] for s in doc["skipped"]}


def test_freshly_pushed_host_passes_the_live_checks(project: Project) -> None:
    code, found, skipped = live(project)
    assert found == {}
    assert code == 0
    # tls: false in the sandbox config: the HTTPS checks say so instead of passing.
    assert set(skipped) == {"LIVE005", "LIVE008", "LIVE009", "LIVE015", "LIVE016"}


def test_broken_host_gets_exactly_the_live_findings(project: Project, box: Sandbox) -> None:
    host = box.hosts()[0]
    site_file = "/etc/nginx/sites-available/flaskr.conf"
    box.run(host, ["sh", "-c", f"echo '# edited by hand' >> {site_file}"], check=True)
    box.run(host, ["chmod", "0644", "/etc/flaskr/env"], check=True)
    status = box.run(host, ["sh", "-c", "readlink /srv/flaskr/live.sock"], check=True).stdout.strip()
    slot = "blue" if status.endswith("blue.sock") else "green"
    box.run(host, ["systemctl", "stop", f"flaskr@{slot}.service"], check=True)
    code, found, _ = live(project)
    assert code == 1
    assert found["LIVE001"] == [f"flaskr@{slot}.service is inactive"]
    assert found["LIVE004"] == [f"{site_file} differs from the rendered nginx/flaskr.conf"]
    assert found["LIVE006"][0].startswith("/etc/flaskr/env has mode 0644")
    assert found["LIVE012"] == ["/health answered 502"]
    assert set(found) == {"LIVE001", "LIVE004", "LIVE006", "LIVE012"}


# --- HTTPS: two hosts with certificates from a real ACME server (pebble), as in test_https.py -------


def live_https(site: Site) -> tuple[int, dict[str, list[str]]]:  # noqa: F811
    out = site.deploy("check", "--live", "--select", "LIVE", "--format", "json", check=False)
    assert out.returncode in (0, 1), out.stderr
    found: dict[str, list[str]] = {}
    for f in json.loads(out.stdout)["findings"]:
        found.setdefault(f["id"], []).append(f"{f.get('host')}: {f['message']}")
    return out.returncode, found


def test_https_site_passes_every_live_check(site: Site, app_deployed: None) -> None:  # noqa: F811
    code, found = live_https(site)
    assert found == {}
    assert code == 0


def test_weakened_tls_and_headers_are_found_on_the_live_site(site: Site, app_deployed: None) -> None:  # noqa: F811
    host = site.hosts[0]
    site.ssh(
        host,
        "sed -i 's/ssl_protocols TLSv1.2 TLSv1.3;/ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;/; "
        "s/ssl_ciphers [^;]*;/ssl_ciphers ALL:@SECLEVEL=0;/; s/server_tokens off;/server_tokens on;/' "
        # The catch-all default server too: nginx settles the protocol before it reads the name (SNI).
        "/etc/nginx/sites-available/flaskr.conf /etc/nginx/conf.d/deploy-catch-all-tls.conf && "
        "sed -i '/Strict-Transport-Security/d' /etc/nginx/snippets/flaskr-security-headers.conf && "
        "nginx -t && systemctl reload nginx",
    )
    code, found = live_https(site)
    where = f"flaskr.test via {host.address}"
    assert code == 1
    assert found["LIVE009"] == [f"{where}: no Strict-Transport-Security header"]
    assert found["LIVE014"] == [f"{where}: Server: nginx/1.22.1"]
    assert f"{where}: accepts TLSv1, TLSv1.1" in found["LIVE015"]
    assert len(found["LIVE004"]) == 3  # the site, the catch-all and the headers snippet differ from render
    assert set(found) == {"LIVE004", "LIVE009", "LIVE014", "LIVE015"}
