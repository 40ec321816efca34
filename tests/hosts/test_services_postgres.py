"""services.postgres on real hosts: deploy sets Postgres up on the first of two app hosts; the app's
second host writes and reads rows through DATABASE_URL with verify-full TLS; a third host (not an app
host) is refused by pg_hba; a second setup changes nothing; the password never reaches the output;
the rows survive a push, a rollback, a Postgres restart and a host reboot.

One private sandbox of 3 hosts for the module: the tests run in order and build on each other (the
last one reboots the service host).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, make_project, private_sandbox

pytestmark = pytest.mark.hosts

SERVICES = "services:\n  postgres: {}"
CA = "/etc/flaskr/postgres-ca.crt"
CREDENTIALS = "/etc/deploy/flaskr/services/postgres.env"
DROPIN = "/etc/postgresql/15/main/conf.d/deploy-flaskr.conf"


@dataclass
class World:
    box: Sandbox
    project: Project
    hosts: list[SandboxHost]
    outputs: list[str]

    def deploy(self, *args: str) -> str:
        result = self.project.deploy(*args)
        out = result.stdout + result.stderr
        self.outputs.append(out)
        assert result.returncode == 0, out
        return out

    def sh(self, host: SandboxHost, script: str, check: bool = True) -> tuple[int, str]:
        result = self.box.run(host, ["sh", "-c", script], timeout=60)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result.returncode, result.stdout + result.stderr

    def password(self) -> str:
        _, out = self.sh(
            self.hosts[0], "sed -n 's/^POSTGRES_PASSWORD=//p' /etc/deploy/flaskr/services/postgres.env"
        )
        return out.strip()

    def url(self) -> str:
        """DATABASE_URL as the app's env file on host 2 has it."""
        _, out = self.sh(self.hosts[1], "sed -n 's/^DATABASE_URL=\"\\(.*\\)\"$/\\1/p' /etc/flaskr/env")
        return out.strip()

    def psql_as_app(
        self, host: SandboxHost, sql: str, url: str | None = None, user: str = "flaskr"
    ) -> tuple[int, str]:
        """psql as the app's user on `host`, through the URL the app gets (libpq, as psycopg)."""
        script = f'cd / && runuser -u {user} -- psql -XAtq -v ON_ERROR_STOP=1 "$0" -c {sql!r}'
        result = self.box.run(host, ["sh", "-c", script, url or self.url()], timeout=60)
        return result.returncode, result.stdout + result.stderr

    def rows(self) -> list[str]:
        code, out = self.psql_as_app(self.hosts[1], "SELECT name FROM users ORDER BY id")
        assert code == 0, out
        return out.split()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with private_sandbox(tmp_path_factory, "pg-sandbox", 3) as box:
        hosts = box.hosts()
        project = make_project(tmp_path_factory.mktemp("pg"), hosts[:2])
        project.write_config(extra=SERVICES)
        project.commit("services: postgres")
        yield World(box, project, hosts, [])


def test_setup_makes_postgres_and_the_app_host_uses_it_over_verify_full(world: World) -> None:
    out = world.deploy("setup")
    service = world.hosts[0].address
    assert f"{service}: postgres: created role flaskr" in out
    assert "created database flaskr" in out
    url = world.url()
    assert url.startswith("postgresql://flaskr:") and url.endswith(
        f"@{service}:5432/flaskr?sslmode=verify-full&sslrootcert={CA}"
    )
    # The second app host writes and reads rows; its connection is TLS.
    code, out = world.psql_as_app(world.hosts[1], "CREATE TABLE users (id serial PRIMARY KEY, name text)")
    assert code == 0, out
    code, out = world.psql_as_app(world.hosts[1], "INSERT INTO users (name) VALUES ('ada'), ('grace')")
    assert code == 0, out
    assert world.rows() == ["ada", "grace"]
    code, out = world.psql_as_app(world.hosts[1], "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert (code, out.strip()) == (0, "t")
    # Files: credentials root 0600 on the service host; the CA's key never leaves it.
    _, out = world.sh(world.hosts[0], f"stat -c '%U %a' {CREDENTIALS}")
    assert out.strip() == "root 600"
    code, _ = world.sh(world.hosts[1], "test -e /etc/deploy/flaskr/services/postgres-ca/ca.key", check=False)
    assert code != 0
    _, out = world.sh(world.hosts[0], f"grep -h listen_addresses {DROPIN}")
    assert out.strip() == f"listen_addresses = 'localhost,{service}'"


def test_an_app_alone_on_the_postgres_host_talks_over_localhost(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The third host (no app host of the first project) gets its own app with Postgres beside it."""
    solo = make_project(tmp_path_factory.mktemp("pg-solo"), world.hosts[2:])
    solo.write_config(extra=SERVICES)
    solo.commit("services: postgres")
    result = solo.deploy("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgres CA certificate" not in result.stdout and "made deploy's CA" not in result.stdout
    host = world.hosts[2]
    _, url = world.sh(host, "sed -n 's/^DATABASE_URL=\"\\(.*\\)\"$/\\1/p' /etc/flaskr/env")
    assert re.fullmatch(r"postgresql://flaskr:[A-Za-z0-9_-]{43}@localhost:5432/flaskr", url.strip()), url
    _, listen = world.sh(host, f"grep -h listen_addresses {DROPIN}")
    assert listen.strip() == "listen_addresses = 'localhost'"
    code, out = world.psql_as_app(host, "SELECT current_user", url=url.strip())
    assert (code, out.strip()) == (0, "flaskr")
    # Nothing but localhost: the host's own address is not listened on.
    code, out = world.psql_as_app(host, "SELECT 1", url=url.strip().replace("localhost", host.address))
    assert code != 0 and "Connection refused" in out, out


def test_a_host_that_is_not_an_app_host_is_refused_by_pg_hba(world: World) -> None:
    outsider = world.hosts[2]
    # Even with the password and the CA in hand, pg_hba rejects its address.
    _, ca = world.sh(world.hosts[1], f"cat {CA}")
    world.box.run(outsider, ["sh", "-c", f"mkdir -p /etc/flaskr && cat > {CA}"], input=ca, timeout=30)
    code, out = world.psql_as_app(outsider, "SELECT 1", user="nobody")
    assert code != 0
    assert (
        f'pg_hba.conf rejects connection for host "{outsider.address}", user "flaskr", database "flaskr"'
        in out
    )


def test_a_second_setup_changes_nothing_and_says_so(world: World) -> None:
    out = world.deploy("setup")
    assert f"{world.hosts[0].address}: postgres already set up; nothing changed" in out
    # No postgres step ran (a step prints a progress line "  HOST  STEP  SECONDS  ok").
    assert not re.search(r"^  \S+ +postgres", out, re.MULTILINE), out
    dry = world.deploy("setup", "--dry-run")
    assert "postgres is already set up; nothing would change" in dry


def test_a_setting_read_at_start_is_a_restart_and_setup_says_so(world: World) -> None:
    world.project.write_config(extra="services:\n  postgres: {max_connections: 50}")
    world.project.commit("max_connections: 50")
    dry = world.deploy("setup", "--dry-run")
    assert "[postgres (restart: max_connections changed)]" in dry
    out = world.deploy("setup")
    assert "restarted postgresql@15-main: the change needs a restart" in out
    _, shown = world.sh(world.hosts[0], "cd / && runuser -u postgres -- psql -XAtc 'SHOW max_connections'")
    assert shown.strip() == "50"
    assert world.rows() == ["ada", "grace"]
    assert "postgres already set up; nothing changed" in world.deploy("setup")


def test_the_password_is_never_in_the_output_except_from_credentials(world: World) -> None:
    password = world.password()
    assert len(password) >= 40
    world.deploy("setup", "--dry-run")
    world.deploy("push", "--dry-run")
    for out in world.outputs:
        assert password not in out
    result = world.project.deploy("services", "credentials")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"DATABASE_URL={world.url()}"
    assert password in result.stdout and "warning: the postgres password follows" in result.stderr


def test_rows_survive_push_rollback_postgres_restart_and_a_reboot(world: World) -> None:
    for version in ("v2", "v3"):
        world.project.set_version(version)
        world.deploy("push")
        assert world.rows() == ["ada", "grace"]
    # The running app has the URL in its environment (from the env file, through systemd).
    _, out = world.sh(world.hosts[1], "tr '\\0' '\\n' < /proc/$(pgrep -u flaskr -o gunicorn)/environ")
    assert f"DATABASE_URL={world.url()}" in out.splitlines()
    world.deploy("rollback")
    assert world.rows() == ["ada", "grace"]
    world.sh(world.hosts[0], "systemctl restart postgresql")
    assert world.rows() == ["ada", "grace"]
    service = world.hosts[0]
    world.box.run(service, ["systemctl", "reboot"], timeout=30)
    deadline = time.monotonic() + 60
    while world.box.is_running(world.box.host(service.name)):
        assert time.monotonic() < deadline, "the host did not go down for its reboot"
        time.sleep(0.2)
    world.box.restart(service.name)
    deadline = time.monotonic() + 60
    while True:
        code, out = world.psql_as_app(world.hosts[1], "SELECT count(*) FROM users")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert world.rows() == ["ada", "grace"]
    for out in world.outputs:
        assert world.password() not in out


def test_network_private_is_a_reload_and_a_url_without_tls(world: World) -> None:
    world.project.write_config(extra="services:\n  postgres: {max_connections: 50, network: private}")
    world.project.commit("network: private")
    out = world.deploy("setup")
    assert "postgres (reload)" in out and "reloaded postgresql@15-main: open connections stay" in out
    url = world.url()
    assert url.endswith(f"@{world.hosts[0].address}:5432/flaskr"), "the URL still pins TLS"
    _, hba = world.sh(world.hosts[0], "cat /etc/postgresql/15/main/pg_hba.conf")
    assert f"host  flaskr  flaskr  {world.hosts[1].address}/32  scram-sha-256" in hba.splitlines()
    assert world.rows() == ["ada", "grace"]
    code, out = world.psql_as_app(world.hosts[2], "SELECT 1", url=url, user="nobody")
    assert code != 0 and "pg_hba.conf rejects connection" in out


USERS_MODEL = """\
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.Text)
"""


def revision(rev: str, down: str | None, body: str) -> str:
    return (
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\n\n\ndef upgrade():\n    {body}\n"
    )


def test_a_push_whose_new_migration_drops_what_the_code_uses_is_refused(world: World) -> None:
    """Expand/contract: the migration new in a push that drops users.name is refused while the pushed
    model still maps it (no host changes, the lock is free again), and only warned about once the model
    stopped using it; the running release is named in the warning. A rollback to the release whose model
    maps it is warned about (it runs no downgrade)."""
    world.deploy("setup")  # idempotent: the test also runs alone
    path = world.project.path
    (path / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (path / "migrations" / "env.py").write_text("", encoding="utf-8")
    (path / "flaskr" / "models.py").write_text(USERS_MODEL, encoding="utf-8")
    (path / "migrations" / "versions" / "a1_users.py").write_text(
        revision("a1", None, "op.create_table('users', sa.Column('id', sa.Integer))"), encoding="utf-8"
    )
    world.project.commit("models and a first migration")
    world.deploy("push")
    _, live = world.sh(world.hosts[1], "readlink /srv/flaskr/current")
    (path / "migrations" / "versions" / "b2_drop_name.py").write_text(
        revision("b2", "a1", "op.drop_column('users', 'name')"), encoding="utf-8"
    )
    world.project.commit("drop users.name")
    result = world.project.deploy("push")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    release = live.strip().rsplit("/", 1)[-1]
    assert (
        "warning: migrations/versions/b2_drop_name.py:9: op.drop_column drops column users.name, a migration "
        f"new in this push; the running release ({release} on " in out
    )
    assert "nothing was changed: a migration of this push takes away what the pushed code still uses" in out
    assert "but the new code still uses it: User.name (flaskr/models.py:9)" in out
    assert world.sh(world.hosts[1], "readlink /srv/flaskr/current")[1] == live
    (path / "flaskr" / "models.py").write_text(USERS_MODEL.replace("    name = db.Column(db.Text)\n", ""))
    world.project.commit("the model stops using users.name")
    out = world.deploy("push")
    assert "warning: migrations/versions/b2_drop_name.py:9: op.drop_column drops column users.name" in out
    assert "expand/contract: ship the code that stops using" in out
    assert world.sh(world.hosts[1], "readlink /srv/flaskr/current")[1] != live
    # Back to the release whose model maps users.name: a rollback runs no downgrade, so it says so.
    out = world.deploy("rollback")
    assert (
        f"warning: {release}'s code maps column users.name (User.name, flaskr/models.py:9), but "
        "migrations/versions/b2_drop_name.py:9 (op.drop_column, a migration of " in out
    )
    assert world.sh(world.hosts[1], "readlink /srv/flaskr/current")[1] == live
