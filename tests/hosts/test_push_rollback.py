"""deploy rollback on a real host: none earlier, the current release, a named one, the release that
served before (after a rollback and a push), and keep_releases pruning; push and rollback to a host
that `deploy setup` never prepared.

Nothing here breaks a host, so the tests use the session's shared sandbox (its first host). Each test
deploys an app of its own name, domain and directories, so it depends on no other test or order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, make_project

pytestmark = pytest.mark.hosts


@dataclass
class App:
    """The example app deployed to one host under its own name (`/srv/<name>`, `<name>.test`)."""

    name: str
    project: Project
    box: Sandbox
    host: SandboxHost

    def deploy(self, *args: str) -> tuple[int, str]:
        result = self.project.deploy(*args)
        return result.returncode, result.stdout + result.stderr

    def push(self, version: str) -> str:
        """Commit a new version and push it; the release id."""
        self.project.set_version(version)
        code, out = self.deploy("push")
        assert code == 0, out
        match = re.search(r"release (\S+) is live on", out)
        assert match, out
        return match.group(1)

    def version(self) -> str:
        """The version the host's site answers for this app's domain."""
        return str(self.get_json("/health")["version"])

    def get_json(self, path: str) -> dict[str, object]:
        """What the host's site answers for `path` of this app's domain (status 200, JSON)."""
        import http.client

        conn = http.client.HTTPConnection(self.host.address, 80, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": f"{self.name}.test"})
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        assert response.status == 200, body
        return dict(json.loads(body))

    def sh(self, script: str) -> str:
        return self.box.run(self.host, ["sh", "-c", script], check=True, timeout=30).stdout

    def releases(self) -> list[str]:
        return self.sh(f"ls /srv/{self.name}/releases").split()

    def current(self) -> str:
        return self.sh(f"basename $(readlink /srv/{self.name}/current)").strip()

    def snapshot(self) -> str:
        """Links, release folders (with their times) and the audit log: what a no-op must leave alone."""
        base = f"/srv/{self.name}"
        return self.sh(
            f"readlink {base}/current {base}/live.sock {base}/slots/blue {base}/slots/green; "
            f"ls -l --time-style=full-iso {base}/releases; cat {base}/.deploy/history.jsonl"
        )


def make_app(
    name: str, root: Path, sandbox: Sandbox, host: SandboxHost, push: str = "", setup: bool = True
) -> App:
    project = make_project(root, [host])
    project.write_config(push=push)
    path = project.path / "deploy.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in (
        ("name: flaskr", f"name: {name}"),
        ("user: flaskr", f"user: {name}"),
        ("flaskr.test", f"{name}.test"),
    ):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    project.commit(f"deploy.yaml for {name}")
    app = App(name, project, sandbox, host)
    if setup:
        code, out = app.deploy("setup")
        assert code == 0, out
    return app


def test_push_and_rollback_to_a_host_not_set_up_say_what_is_missing_and_change_nothing(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost], tmp_path: Path
) -> None:
    app = make_app("rbnosetup", tmp_path, sandbox, sandbox_hosts[0], setup=False)
    address = app.host.address
    for command in (["push"], ["rollback"]):  # the deploy lock lives in a folder setup makes
        code, out = app.deploy(*command)
        assert code == 1, out
        assert (
            f"{address}: cannot open the lock file /srv/rbnosetup/.deploy/lock: run 'deploy setup' first"
            in out
        )
        assert "Traceback" not in out
    code, out = app.deploy("push", "--dry-run")  # takes no lock: the plan names every missing piece
    assert code == 1, out
    assert (
        f"error: nothing was changed: {address} is not set up (the user rbnosetup, the directory "
        "/srv/rbnosetup/.deploy, the unit /etc/systemd/system/rbnosetup@.service missing): "
        "run 'deploy setup' first"
    ) in out, out
    assert app.box.run(app.host, ["test", "-e", "/srv/rbnosetup"]).returncode != 0
    # Set up, then the unit removed by hand: that alone is named, for push and rollback.
    code, out = app.deploy("setup")
    assert code == 0, out
    app.sh("rm /etc/systemd/system/rbnosetup@.service")
    for command in (["push"], ["rollback"]):
        code, out = app.deploy(*command)
        assert code == 1, out
        assert (
            f"nothing was changed: {address} is not set up (the unit /etc/systemd/system/rbnosetup@.service "
            "missing): run 'deploy setup' first"
        ) in out, out
    assert app.releases() == []


def test_rollback_without_an_earlier_release_to_the_current_one_and_to_a_named_one(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost], tmp_path: Path
) -> None:
    app = make_app("rbnamed", tmp_path, sandbox, sandbox_hosts[0])
    first = app.push("v1")
    before = app.snapshot()

    code, out = app.deploy("rollback")
    assert code == 1, out
    assert f"error: nothing was changed: {app.host.address}: no earlier release to roll back to" in out, out
    assert "Traceback" not in out
    assert app.snapshot() == before and app.version() == "v1"

    code, out = app.deploy("rollback", first)
    assert code == 0, out
    assert f"every host already serves {first}" in out, out
    assert app.snapshot() == before and app.version() == "v1"

    code, out = app.deploy("rollback", "20200101-000000-nothere")
    assert code == 1, out
    assert f"no complete release '20200101-000000-nothere'; releases there: {first}" in out, out
    assert app.snapshot() == before

    second = app.push("v2")
    code, out = app.deploy("rollback", first)
    assert code == 0, out
    assert f"{app.host.address}: {second} -> {first}" in out and f"release {first} serves again" in out, out
    assert (app.current(), app.version()) == (first, "v1")
    code, out = app.deploy("rollback", second)  # forward again, by name
    assert code == 0, out
    assert (app.current(), app.version()) == (second, "v2")


def test_rollback_goes_to_the_release_that_served_before_and_pruning_keeps_only_keep_releases(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost], tmp_path: Path
) -> None:
    """Push A, push B, roll back (to A), push C, roll back: A, not B that was rolled away from.
    With keep_releases 2, pushes then leave the current release and the one it replaced, no more."""
    app = make_app("rbhistory", tmp_path, sandbox, sandbox_hosts[0], push="keep_releases: 2")
    a = app.push("A")
    b = app.push("B")
    code, out = app.deploy("rollback")
    assert code == 0, out
    assert (app.current(), app.version()) == (a, "A")
    c = app.push("C")
    code, out = app.deploy("rollback")
    assert code == 0, out
    assert f"{app.host.address}: {c} -> {a}" in out, out
    assert (app.current(), app.version()) == (a, "A")
    # C replaced A: B, rolled away from (and newer than A), was pruned; A, C's rollback target, stays.
    assert app.releases() == [a, c]

    d = app.push("D")
    e = app.push("E")
    assert app.releases() == [d, e], "keep_releases 2: the current release and the one it replaced"
    assert (app.current(), app.version()) == (e, "E")
    code, out = app.deploy("rollback")
    assert code == 0, out
    assert (app.current(), app.version()) == (d, "D")
    assert b not in app.releases()


VISITS = """\
    import sqlite3 as _sqlite3
    _db = os.path.join(os.path.dirname(app.root_path), "app.db")

    @app.get("/visits")
    def visits():
        con = _sqlite3.connect(_db)
        con.execute("CREATE TABLE IF NOT EXISTS v (n INTEGER)")
        con.execute("INSERT INTO v VALUES (1)")
        con.commit()
        count = con.execute("SELECT count(*) FROM v").fetchone()[0]
        con.close()
        return {"visits": count}

"""


def test_shared_files_are_made_once_linked_into_each_release_and_kept_across_push_and_rollback(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost], tmp_path: Path
) -> None:
    """app.shared_files: a SQLite file at the project root (the app writes it, SQLite puts its journal
    beside it) and a key in a folder; setup makes them empty, the app user's, 0600; every release links
    them; what they hold survives a push and a rollback."""
    app = make_app("shfiles", tmp_path, sandbox, sandbox_hosts[0], setup=False)
    path = app.project.path / "deploy.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("app:\n", "app:\n  shared_files: [app.db, keys/secret.key]\n", 1), encoding="utf-8"
    )
    app.project.commit("share two files")
    code, out = app.deploy("setup")
    assert code == 0, out
    store = "/srv/shfiles/shared/.files"
    assert app.sh(f"stat -c '%U %G %a %s' {store}/app.db {store}/keys/secret.key").split("\n")[:2] == [
        "shfiles shfiles 600 0",
        "shfiles shfiles 600 0",
    ]
    app.sh(f"printf generated-key > {store}/keys/secret.key")

    def visits() -> int:
        return int(str(app.get_json("/visits")["visits"]))

    app.project.set_version("A", extra=VISITS)
    code, out = app.deploy("push")
    assert code == 0, out
    a = app.current()
    assert app.sh(
        f"readlink /srv/shfiles/releases/{a}/app.db /srv/shfiles/releases/{a}/keys/secret.key"
    ).split() == [
        f"{store}/app.db",
        f"{store}/keys/secret.key",
    ]
    assert (visits(), visits()) == (1, 2)
    app.project.set_version("B", extra=VISITS)
    code, out = app.deploy("push")
    assert code == 0, out
    assert app.version() == "B" and visits() == 3
    code, out = app.deploy("rollback")
    assert code == 0, out
    assert (app.current(), app.version()) == (a, "A")
    assert visits() == 4
    assert app.sh(f"cat {store}/keys/secret.key") == "generated-key"
    assert app.sh(f"stat -c '%U %a' {store}/keys/secret.key").strip() == "shfiles 600"
    code, out = app.deploy("setup")  # setup again: the files keep what they hold
    assert code == 0, out
    assert app.sh(f"cat {store}/keys/secret.key") == "generated-key" and visits() == 5
