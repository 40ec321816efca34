"""The HTTPS site of the host tests: two sandbox hosts with the sandbox's pebble and the example app's
project, the test names pointing at the SECOND host (test_https.py tells why).

One site for the session, shared by tests/hosts/test_https.py and test_check_live.py: the fixtures are
session-scoped (tests/hosts/conftest.py imports them) and tests/conftest.py's SHARED_FIXTURES keeps
both modules on one xdist worker, so the two hosts boot, get their certificates and the app once.
Every test that changes the site puts it back (test_check_live.py's `edited`, `finally` blocks).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost

from .pebble import AcmeServer, require_pebble, sandbox_pebble

REPO = Path(__file__).resolve().parents[2]
NAMES = ("flaskr.test", "www.flaskr.test")

DEPLOY_YAML = """\
app:
  name: flaskr
  wsgi: "flaskr:create_app()"
  static: {{url: /static, dir: flaskr/static}}
  env: {{LOG_LEVEL: info}}
  secrets: [SECRET_KEY]
  shared: [instance]
  release: ["flask --app flaskr init-db"]
server:
  domains: [{names}]
  user: flaskr
  tls:
    email: ops@flaskr.test
    acme_server: {acme}
    ca_bundle: pebble-api-ca.pem
"""


@dataclass
class Site:
    box: Sandbox
    hosts: list[SandboxHost]
    pebble: AcmeServer
    project: Path

    def deploy(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DEPLOY_SANDBOX_DIR": str(self.box.state_dir),
            "PYTHONPATH": str(REPO),
            "SECRET_KEY": SECRET,
        }
        out = subprocess.run(
            [sys.executable, "-m", "deploy", *args, "-e", "sandbox"],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"deploy {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
            )
        return out

    def ssh(self, host: SandboxHost, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            host.ssh_argv(["sh", "-c", script]), capture_output=True, text=True, timeout=300, check=False
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{host.name}: {script!r} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
            )
        return out


SECRET = secrets.token_hex(32)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two private sandbox hosts with the sandbox's pebble, the example app's project; names -> host 2."""
    require_pebble()
    box = Sandbox(tmp_path_factory.mktemp("https-sandbox"), progress=lambda m: print(f"[sandbox] {m}"))
    box.up(2)
    try:
        hosts = box.hosts()
        pebble = sandbox_pebble(box)
        for name in NAMES:
            pebble.point(name, hosts[1].address)
        project = tmp_path_factory.mktemp("project")
        shutil.copytree(REPO / "playbooks" / "flaskr", project, dirs_exist_ok=True)
        (project / "deploy.yaml").write_text(
            DEPLOY_YAML.format(names=", ".join(NAMES), acme=pebble.directory), encoding="utf-8"
        )
        # tls.ca_bundle: certbot trusts pebble's API with it; `deploy check --live` verifies the site
        # with it. A private CA does both; pebble uses two, so the bundle holds both. (-e sandbox sets
        # the same server and an equal bundle of its own: this file shows the form a user writes.)
        (project / "pebble-api-ca.pem").write_bytes(pebble.bundle_file.read_bytes())
        for argv in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "example app"],
        ):
            subprocess.run(["git", *argv], cwd=project, check=True, capture_output=True)
        yield Site(box, hosts, pebble, project)
    finally:
        box.down()


@pytest.fixture(scope="session")
def issued(site: Site) -> str:
    """`deploy setup` has run once (which obtains the certificates); its output."""
    out = site.deploy("setup")
    print(out.stdout)
    return out.stdout


@pytest.fixture(scope="session")
def app_deployed(site: Site, issued: str) -> None:
    out = site.deploy("push", check=False)
    if out.returncode != 0:
        raise AssertionError(
            f"deploy push failed, so the example app cannot be graded:\n{out.stdout}\n{out.stderr}"
        )
