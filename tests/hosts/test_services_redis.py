"""services.redis on sandbox hosts: hosts 1 and 2 run the app (Redis on host 1), host 3 is no app host.

The app reaches Redis through REDIS_URL (TLS, deploy's CA, its own ACL user); host 3, the default
user and the plain port get nothing; data with rdb or aof survives a restart of redis-server and a
switch between them; a second setup changes nothing; the password never shows in deploy's output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, make_project, private_sandbox

pytestmark = pytest.mark.hosts

CA = "/etc/flaskr/redis-ca.crt"
CREDENTIALS = "/etc/deploy/flaskr/services/redis.env"
#: Runs in the app's release on an app host, with its env file: the client is redis-py.
CLIENT = """\
import os, sys, redis
from urllib.parse import urlsplit
url = os.environ["REDIS_URL"]
r = redis.from_url(url)
op, key, *value = sys.argv[1:]
if op == "set":
    r.set(key, value[0])
print("scheme", urlsplit(url).scheme, "user", r.acl_whoami(), "value", r.get(key))
"""


@dataclass
class Setup:
    box: Sandbox
    project: Project
    hosts: list[SandboxHost]
    outputs: list[str] = field(default_factory=list)

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.project.deploy(*args, timeout=300)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def client(self, host: SandboxHost, *args: str) -> str:
        result = self.deploy("exec", "--host", host.address, "--", "python", "-c", CLIENT, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def on(self, index: int, script: str) -> subprocess.CompletedProcess[str]:
        return self.box.run(self.hosts[index], ["sh", "-c", script], timeout=60)

    def said(self, index: int, script: str) -> list[str]:
        """What `script` printed on both streams, without blank lines and redis-cli's warnings."""
        result = self.on(index, f"exec 2>&1; {script}")
        return [
            line for line in result.stdout.splitlines() if line.strip() and not line.startswith("Warning:")
        ]

    def write_config(self, redis: str) -> None:
        self.project.write_config(extra=f"services:\n  redis: {redis}")
        self.project.commit(f"services.redis: {redis}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with private_sandbox(tmp_path_factory, "redis", 3) as box:
        hosts = box.hosts()
        project = make_project(tmp_path_factory.mktemp("redis-app"), hosts[:2])
        with (project.path / "requirements.txt").open("a", encoding="utf-8") as file:
            file.write("redis==5.0.1\n")
        made = Setup(box, project, hosts)
        made.write_config("{persistence: rdb, maxmemory: 64mb}")
        dry = made.deploy("setup", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "redis (new credentials" in dry.stdout
        result = made.deploy("setup")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{hosts[0].address}: redis (new credentials" in result.stdout
        assert "redis-server started" in result.stdout
        result = made.deploy("push")
        assert result.returncode == 0, result.stdout + result.stderr
        yield made


def test_an_app_host_sets_and_gets_through_redis_url_over_tls(setup: Setup) -> None:
    out = setup.client(setup.hosts[1], "set", "greeting", "hello")
    assert "scheme rediss user flaskr value b'hello'" in out
    assert "scheme rediss user flaskr value b'hello'" in setup.client(setup.hosts[0], "get", "greeting")
    env = setup.on(
        1, "stat -c '%U:%G %a' /etc/flaskr/env; grep -c '^REDIS_URL=\"rediss://flaskr:' /etc/flaskr/env"
    )
    assert env.stdout.split() == ["root:root", "600", "1"]


def test_redis_listens_on_loopback_and_the_service_address_only(setup: Setup) -> None:
    listening = setup.on(0, "ss -Hltn 'sport = :6379' | awk '{print $4}' | sort").stdout.split()
    assert listening == sorted(["127.0.0.1:6379", f"{setup.hosts[0].address}:6379"])


def test_the_host_that_is_not_an_app_host_is_refused(setup: Setup) -> None:
    first = setup.hosts[0].address
    assert setup.on(2, f"test -e {CA} || echo none").stdout.strip() == "none"
    tls = f"redis-cli --tls --insecure -h {first}"
    refused = setup.said(2, f"{tls} set stolen 1; {tls} --user flaskr --pass guessed-password get greeting")
    assert refused == [
        "NOAUTH Authentication required.",
        "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.",
    ]
    plain = setup.on(2, f"redis-cli -h {first} ping")
    assert "Connection reset by peer" in plain.stdout + plain.stderr


def test_the_default_user_can_do_nothing_and_the_app_user_no_administration(setup: Setup) -> None:
    cli = f"redis-cli --tls --cacert {CA} -h 127.0.0.1"
    out = setup.said(0, f"{cli} ping; {cli} --user default --pass '' ping")
    assert out == [
        "NOAUTH Authentication required.",
        "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.",
    ]
    # The app's user (its password read from the credentials file into the environment, not argv).
    app = setup.on(
        0,
        f"REDISCLI_AUTH=$(sed -n 's/^REDIS_PASSWORD=//p' {CREDENTIALS}) "
        f"{cli} --user flaskr config set dir /tmp",
    )
    assert "NOPERM" in app.stdout, app.stdout + app.stderr
    mode = setup.on(0, f"stat -c '%U:%G %a' {CREDENTIALS}").stdout.strip()
    assert mode == "root:root 600"


def test_a_second_setup_changes_nothing(setup: Setup) -> None:
    result = setup.deploy("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Redis: already set up; nothing changed" in result.stdout
    for host in setup.hosts[:2]:
        assert f"{host.address}: already set up; nothing changed" in result.stdout


def test_rdb_and_aof_data_survive_a_restart_and_the_switch_between_them(setup: Setup) -> None:
    setup.client(setup.hosts[1], "set", "kept-rdb", "one")
    setup.on(0, "systemctl restart redis-server")
    assert "value b'one'" in setup.client(setup.hosts[1], "get", "kept-rdb")
    setup.write_config("{persistence: aof, maxmemory: 64mb}")
    result = setup.deploy("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "redis-server wrote its AOF from memory before the restart; redis-server restarted" in result.stdout
    )
    assert "value b'one'" in setup.client(setup.hosts[1], "get", "kept-rdb")
    setup.client(setup.hosts[1], "set", "kept-aof", "two")
    setup.on(0, "systemctl restart redis-server")
    assert "value b'two'" in setup.client(setup.hosts[1], "get", "kept-aof")
    assert "value b'one'" in setup.client(setup.hosts[1], "get", "kept-rdb")
    assert (
        setup.on(0, "test -f /var/lib/redis/appendonlydir/appendonly.aof.manifest && echo aof").stdout
        == "aof\n"
    )


def test_services_credentials_prints_the_url_the_app_reads(setup: Setup) -> None:
    shown = setup.project.deploy("services", "credentials", "--service", "redis")
    assert shown.returncode == 0, shown.stderr
    in_env = setup.on(1, "sed -n 's/^REDIS_URL=\"\\(.*\\)\"$/\\1/p' /etc/flaskr/env").stdout.strip()
    assert in_env.startswith("rediss://flaskr:")
    assert shown.stdout == f"REDIS_URL={in_env}\n"
    assert "warning: the redis password follows" in shown.stderr


def test_the_password_never_appears_in_deploys_output(setup: Setup) -> None:
    setup.deploy("setup", "--dry-run")
    setup.deploy("push", "--dry-run")
    password = setup.on(0, f"sed -n 's/^REDIS_PASSWORD=//p' {CREDENTIALS}").stdout.strip()
    admin = setup.on(0, f"sed -n 's/^REDIS_ADMIN_PASSWORD=//p' {CREDENTIALS}").stdout.strip()
    assert len(password) == 40 and len(admin) == 40
    assert len(setup.outputs) >= 8
    for output in setup.outputs:
        assert password not in output
        assert admin not in output
