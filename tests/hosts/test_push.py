"""deploy setup / push / rollback on three real sandbox hosts (systemd, Nginx, SSH), under load.

Each test continues from the state the previous one left (one sandbox for the module), so they
run in file order: setup, first push, code push, shared data, rollback, health failure, release
failure, an app that cannot be imported, concurrent pushes, SIGKILL, zero failed requests.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import (
    Load,
    Project,
    addresses,
    get,
    git,
    make_project,
    private_sandbox,
    versions,
)

pytestmark = pytest.mark.hosts


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "push-sandbox", 3) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("push-project"), box.hosts())


def test_setup_prepares_hosts_and_second_run_changes_nothing(box: Sandbox, project: Project) -> None:
    first = project.deploy("setup", check=True)
    assert "changed" in first.stdout
    second = project.deploy("setup", check=True)
    for address in addresses(project):
        assert f"{address}: already set up; nothing changed" in second.stdout
    # The env file holds the secret: mode 0600 on every host, as the host itself reports it.
    for host in project.hosts:
        stat = box.run(host, ["stat", "-c", "%a %U:%G", "/etc/flaskr/env"], check=True).stdout
        mode, owner = stat.split()
        assert mode == "600", f"{host.name}: /etc/flaskr/env has mode {mode}, expected 600"
        assert owner == "root:root", f"{host.name}: /etc/flaskr/env is owned by {owner}"
        secret = box.run(host, ["grep", "-c", "^SECRET_KEY=", "/etc/flaskr/env"], check=True).stdout
        assert secret.strip() == "1"


def test_first_push_then_code_push_serve_new_code(project: Project) -> None:
    first = project.deploy("push", check=True)
    assert "is live on" in first.stdout
    assert versions(project) == ["v1"] * 3
    project.set_version("v2")
    second = project.deploy("push", check=True)
    # Only the changed file travels; the virtualenv is reused.
    assert "(1 file(s) sent, 0 deleted, venv reused)" in second.stdout
    assert versions(project) == ["v2"] * 3
    nothing = project.deploy("push", check=True)
    assert "nothing to push" in nothing.stdout


def test_release_files_are_private_static_files_served_and_secret_files_stay_home(
    box: Sandbox, project: Project
) -> None:
    """With --allow-dirty, untracked secret files (each kind) are not shipped; the release's files are
    root:flaskr 0640 (not world-readable), its static files 0644, and Nginx still serves them."""
    secrets = [".env.production", "deploy.pem", "site.key", "id_ed25519", ".netrc", ".pgpass", "secrets.json"]
    for name in secrets:
        (project.path / name).write_text("SECRET-VALUE\n")
    assert (project.path / ".env.example").is_file()  # committed in the example: a template, shipped
    style = project.path / "flaskr" / "static" / "style.css"
    style.write_text(style.read_text() + "/* dirty */\n")  # something to ship with --allow-dirty
    try:
        project.deploy("push", "--allow-dirty", check=True)
        host = project.hosts[0]
        listing = box.run(
            host,
            [
                "sh",
                "-c",
                "cd /srv/flaskr/current/ && find . -path ./.venv -prune -o -path ./instance -prune -o "
                "-path ./.deploy/served -prune -o -type f -printf '%m %u:%g %P\\n'",
            ],
            check=True,
        ).stdout
        files = {line.split(" ", 2)[2]: line.split(" ", 2)[:2] for line in listing.splitlines()}
        assert ".env.example" in files and not set(secrets) & set(files), sorted(files)
        assert files["flaskr/__init__.py"] == ["640", "root:flaskr"]
        assert files["gunicorn.conf.py"] == ["640", "root:flaskr"]
        assert files["flaskr/static/style.css"] == ["644", "root:flaskr"]
        readable = [name for name, (mode, _) in files.items() if int(mode, 8) & 0o004]
        assert all(n.startswith("flaskr/static/") for n in readable), readable
        assert files[".deploy/release.json"] == ["640", "root:flaskr"]
        folders = box.run(host, ["stat", "-c", "%a %U:%G", "/srv/flaskr/current/.deploy"], check=True)
        assert folders.stdout.split() == ["750", "root:flaskr"]
        for address in addresses(project):
            assert get(address, "/static/style.css")[0] == 200
        assert versions(project) == ["v2"] * 3
    finally:
        for name in secrets:
            (project.path / name).unlink()
        git(project.path, "checkout", "--", "flaskr/static/style.css")
    project.deploy("push", check=True)


def test_shared_data_survives_pushes_and_rollbacks(project: Project) -> None:
    note = "kept-across-releases"
    project.deploy("exec", "--", "sh", "-c", f"echo {note} >> instance/notes.txt", check=True)
    address = addresses(project)[0]
    assert note in get(address, "/")[1]
    project.set_version("v3")
    project.deploy("push", check=True)
    assert versions(project) == ["v3"] * 3
    assert note in get(address, "/")[1]
    rolled = project.deploy("rollback", check=True)
    assert "serves again on" in rolled.stdout
    assert versions(project) == ["v2"] * 3
    assert note in get(address, "/")[1]
    project.deploy("push", check=True)  # back to v3 (HEAD)
    assert versions(project) == ["v3"] * 3
    assert note in get(address, "/")[1]


def test_failing_health_check_rolls_back_every_host(project: Project) -> None:
    # Healthy on sandbox-1, broken on sandbox-2: with --batch 1, sandbox-1 switches first, then
    # sandbox-2 fails its gate, and sandbox-1 must go back by itself.
    extra = (
        "    import socket as _s\n"
        "    if _s.gethostname() == 'sandbox-2':\n"
        "        @app.before_request\n"
        "        def _broken():\n"
        "            return 'database unreachable', 500\n"
    )
    project.set_version("v4-broken", extra)
    result = project.deploy("push", "--batch", "1")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert addresses(project)[1] in out
    assert "answered 500: database unreachable" in out
    assert "last lines of the app's log" in out
    assert "going back to the previous release on " + addresses(project)[0] in out
    assert versions(project) == ["v3"] * 3
    history = project.deploy("history", "--json", check=True)
    entries = json.loads(history.stdout)
    assert entries[addresses(project)[0]][-1]["result"] == "rolled back"
    assert entries[addresses(project)[1]][-1]["result"] == "failed"


def test_failing_release_command_switches_nothing(project: Project) -> None:
    project.write_config(release='["flask --app flaskr init-db", "echo migration 0042 failed >&2; exit 3"]')
    project.set_version("v5")
    result = project.deploy("push")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "release failed" in out and "migration 0042 failed" in out
    assert versions(project) == ["v3"] * 3
    project.write_config()
    project.commit("release commands fixed")


def test_app_that_cannot_be_imported_shows_its_traceback(project: Project) -> None:
    """The factory raises RuntimeError while Gunicorn imports it (preload_app): Gunicorn alone would
    log only "Error: <message>". The push fails on every host, names the file and line that raised,
    keeps the secret in the message out of its output, and the previous release keeps serving."""
    project.write_config(release="[]")  # a release command would import the app first, and fail
    raising = "    raise RuntimeError('model weights missing for key ' + os.environ['SECRET_KEY'])\n"
    project.set_version("v5-unimportable", raising)
    source = (project.path / "flaskr" / "__init__.py").read_text().splitlines()
    line = source.index(raising.rstrip("\n")) + 1
    result = project.deploy("push")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "the app's traceback, from its log since the slot started" in out
    where = re.compile(
        r'^ +File "/srv/flaskr/releases/\d{8}-\d{6}-[0-9a-f]{7}/flaskr/__init__\.py", '
        rf"line {line}, in create_app\n {{6,}}{re.escape(raising.strip())}$",
        re.M,
    )
    assert len(where.findall(out)) == 3, out  # one traceback per host
    assert out.count("RuntimeError: model weights missing for key <SECRET_KEY>") == 3
    assert "test-secret-key" not in out
    assert "nothing switched for good" in out
    assert versions(project) == ["v3"] * 3
    project.write_config()
    project.commit("importable again")


def test_two_concurrent_pushes_exactly_one_proceeds(project: Project) -> None:
    project.write_config(hooks="{pre_push: [{run: 'sleep 2', on: hosts}]}")
    project.set_version("v6")
    first = project.popen("push")
    # The second push starts once the first holds the lock (its pre-push hook then runs for 2 s).
    deadline = time.monotonic() + 60
    while "held by" not in project.deploy("lock", "status").stdout:
        assert first.poll() is None and time.monotonic() < deadline, "the first push never took the lock"
        time.sleep(0.1)
    second = project.popen("push")
    outputs = [p.communicate(timeout=180)[0] for p in (first, second)]
    codes = [first.returncode, second.returncode]
    print(outputs)
    assert sorted(codes) == [0, 1]
    loser = outputs[codes.index(1)]
    assert "the deploy lock is held by" in loser and "push of release" in loser
    assert versions(project) == ["v6"] * 3
    project.write_config()
    project.commit("no hook")


def test_sigkill_mid_push_leaves_previous_release_and_next_push_succeeds(project: Project) -> None:
    project.deploy("push", check=True)  # the config commit above
    before = versions(project)
    # The new release takes 4 s to boot, so the push is killed while its health gate waits.
    project.set_version("v7-slow", "    import time as _t\n    _t.sleep(4)\n")
    process = project.popen("push", "--json")
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("step") == "health" and event.get("status") == "start":
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert versions(project) == before  # nothing had switched: no need to wait for anything
    # The killed push's health probe still runs on the hosts: the lock stays held (and says so) until
    # it ends, at most push.health_timeout later.
    deadline = time.monotonic() + 30
    status = project.deploy("lock", "status", check=True)
    while "held by" in status.stdout and time.monotonic() < deadline:
        assert "its last step (health) is still finishing on the host" in status.stdout, status.stdout
        time.sleep(0.5)
        status = project.deploy("lock", "status", check=True)
    assert "was interrupted before it finished" in status.stdout
    project.set_version("v8")
    after = project.deploy("push", check=True)
    assert "an earlier push did not finish" in after.stdout
    assert versions(project) == ["v8"] * 3


def test_zero_failed_requests_during_push_and_rollback(project: Project) -> None:
    project.set_version("v9")
    with Load(addresses(project)) as load:
        project.deploy("push", check=True)
        pushed = dict(load.counts)
        project.deploy("rollback", check=True)
    print(
        f"requests during push: {pushed}; during push and rollback: {dict(load.counts)}; "
        f"errors: {load.errors}"
    )
    assert load.counts["ok"] > 100
    assert load.failed == 0, load.errors
    assert versions(project) == ["v8"] * 3


def test_dry_run_prints_commands_and_diffs_and_changes_nothing(project: Project) -> None:
    project.write_config(hooks="{}")
    (project.path / "deploy.yaml").write_text(
        (project.path / "deploy.yaml").read_text().replace("client_max_body_size", "x")
        + "nginx: {client_max_body_size: 2m}\n",
        encoding="utf-8",
    )
    project.set_version("v10")
    before = versions(project)
    result = project.deploy("push", "--dry-run", check=True)
    assert "$ systemctl restart --no-block flaskr@" in result.stdout
    assert (
        "+    client_max_body_size 2m;" in result.stdout and "-    client_max_body_size 16m;" in result.stdout
    )
    assert "(secret, 1 keys, unchanged)" not in result.stdout  # unchanged env file is not rewritten
    assert "test-secret-key" not in result.stdout
    assert versions(project) == before
    status = project.deploy("status", check=True)
    assert "healthy" in status.stdout and "lock     free" in status.stdout


def test_a_second_app_shares_the_hosts(project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Another app (its own name, user and domain) set up and pushed onto the same hosts: each name
    reaches its own app, other names are still dropped, and neither app's setup or push undoes the
    other's (the catch-all default servers they share render the same for both)."""
    notes = make_project(tmp_path_factory.mktemp("notes-project"), project.hosts)
    text = (notes.path / "deploy.yaml").read_text(encoding="utf-8")
    text = text.replace("name: flaskr", "name: notes").replace("user: flaskr", "user: notes")
    (notes.path / "deploy.yaml").write_text(text.replace("[flaskr.test]", "[notes.test]"), encoding="utf-8")
    notes.set_version("n1")
    flaskr_before = versions(project)
    notes.deploy("setup", check=True)
    assert "is live on" in notes.deploy("push", check=True).stdout

    def answer(address: str, host: str) -> tuple[int, str] | str:
        conn = http.client.HTTPConnection(address, 80, timeout=5)
        try:
            conn.request("GET", "/health", headers={"Host": host})
            response = conn.getresponse()
            return response.status, response.read().decode()
        except (http.client.HTTPException, OSError) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    for address in addresses(project):
        status, body = answer(address, "notes.test")
        assert status == 200 and json.loads(body)["version"] == "n1"
        assert answer(address, "unknown.test") == "RemoteDisconnected"  # 444 from the shared catch-all
    assert versions(project) == flaskr_before
    # The first app pushes again (its pending site change from the dry-run test included) ...
    project.deploy("push", check=True)
    assert versions(project) == ["v10"] * 3
    for address in addresses(project):
        status, body = answer(address, "notes.test")
        assert status == 200 and json.loads(body)["version"] == "n1"
    # ... and leaves nothing for the second app's setup to put back.
    again = notes.deploy("setup", check=True)
    for address in addresses(project):
        assert f"{address}: already set up; nothing changed" in again.stdout
    # A third app that claims the example's domain is refused before anything changes.
    (notes.path / "deploy.yaml").write_text(
        text.replace("name: notes", "name: clash").replace("user: notes", "user: clash"), encoding="utf-8"
    )
    clash = notes.deploy("setup")
    assert clash.returncode == 1 and "nothing was changed" in clash.stderr
    first = project.hosts[0].address
    assert f"{first}: /etc/nginx/sites-enabled/flaskr.conf already serves flaskr.test" in clash.stderr
    assert "sites-enabled/notes.conf" not in clash.stderr  # notes serves notes.test only
    assert versions(project) == ["v10"] * 3
    # Another project (its own git history) that kept the name 'notes' would replace that app: refused.
    other = make_project(tmp_path_factory.mktemp("other-project"), project.hosts)
    git(other.path, "checkout", "-q", "--orphan", "fresh")
    git(other.path, "commit", "-q", "-m", "a project of its own")
    (other.path / "deploy.yaml").write_text(
        text.replace("name: flaskr", "name: notes")
        .replace("user: flaskr", "user: notes")
        .replace("[flaskr.test]", "[other.test]"),
        encoding="utf-8",
    )
    other.commit("deploy.yaml")
    for command in ("setup", "push"):
        taken = other.deploy(command)
        assert taken.returncode == 1, taken.stdout
        assert "another project already deploys an app named 'notes' here" in taken.stderr
        assert f"{first}: /srv/notes/.deploy/project names git root" in taken.stderr
    for address in addresses(project):
        status, body = answer(address, "notes.test")
        assert status == 200 and json.loads(body)["version"] == "n1"
