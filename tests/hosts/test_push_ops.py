"""deploy push on two real sandbox hosts: requirement includes, pyproject.toml with a src/ layout,
DEPLOY_RELEASE in the app, hooks, logs, --max-failures with --batch, Ctrl-C, and lock release.

The tests share one sandbox and run in file order, each continuing from the state the last left.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import (
    EXAMPLE,
    Project,
    _env,
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
    with private_sandbox(tmp_path_factory, "ops-sandbox", 2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("ops-project"), box.hosts())


def live_release(output: str) -> str:
    match = re.search(r"release (\S+) is live on", output)
    assert match, output
    return match.group(1)


def health(address: str) -> dict[str, str]:
    status, body = get(address)
    assert status == 200, body
    return dict(json.loads(body))


def installed(box: Sandbox, project: Project, package: str) -> str:
    program = f"import importlib.metadata as m; print(m.version({package!r}))"
    result = box.run(project.hosts[0], ["/srv/flaskr/current/.venv/bin/python", "-c", program], check=True)
    return result.stdout.strip()


def test_requirement_includes_are_shipped_and_their_changes_make_a_new_venv(
    box: Sandbox, project: Project
) -> None:
    path = project.path
    pinned = (path / "requirements.txt").read_text()
    (path / "requirements").mkdir()
    # MarkupSafe unpinned in the included file; the constraints file (included too) pins an older one.
    (path / "requirements" / "prod.txt").write_text(pinned.replace("MarkupSafe==3.0.4", "MarkupSafe"))
    (path / "constraints.txt").write_text("MarkupSafe==3.0.2\n")
    (path / "requirements.txt").write_text("-r requirements/prod.txt\n--constraint constraints.txt\n")
    project.commit("requirements with includes")
    project.deploy("setup", check=True)
    first = project.deploy("push", check=True)
    assert "venv new" in first.stdout
    assert versions(project) == ["v1", "v1"]
    assert installed(box, project, "MarkupSafe") == "3.0.2"
    # The app sees the release it runs (DEPLOY_RELEASE from the slot's environment file).
    release = live_release(first.stdout)
    assert health(addresses(project)[0])["release"] == release
    assert health(addresses(project)[1])["release"] == release

    # Editing only the included constraints file builds a new virtualenv.
    (path / "constraints.txt").write_text("MarkupSafe==3.0.3\n")
    project.commit("newer MarkupSafe")
    second = project.deploy("push", check=True)
    assert "venv new" in second.stdout
    assert installed(box, project, "MarkupSafe") == "3.0.3"
    assert health(addresses(project)[0])["release"] == live_release(second.stdout)


def test_a_missing_include_stops_before_any_host(project: Project) -> None:
    (project.path / "requirements.txt").write_text("-r requirements/gone.txt\n")
    project.commit("broken include")
    result = project.deploy("push")
    assert result.returncode != 0
    assert (
        "requirements.txt:1: -r requirements/gone.txt: requirements/gone.txt does not exist" in result.stderr
    )
    assert "Traceback" not in result.stderr and "binary wheel" not in result.stderr
    assert versions(project) == ["v1", "v1"]


def test_pyproject_dependencies_and_a_src_layout(project: Project) -> None:
    path = project.path
    pinned = [
        line
        for line in (path / "requirements" / "prod.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    (path / "pyproject.toml").write_text(
        '[project]\nname = "flaskr"\nversion = "1.0"\ndependencies = [\n'
        + "".join(f'    "{line.strip()}",\n' for line in pinned)
        + "]\n",
        encoding="utf-8",
    )
    for name in ("requirements.txt", "constraints.txt"):
        (path / name).unlink()
    shutil.rmtree(path / "requirements")
    (path / "src").mkdir()
    git(path, "mv", "flaskr", "src/flaskr")
    project.write_config(app_extra="requirements: pyproject.toml")
    config = path / "deploy.yaml"
    # Flask puts the instance folder beside an uninstalled package: src/instance is the shared one.
    config.write_text(
        config.read_text()
        .replace("dir: flaskr/static", "dir: src/flaskr/static")
        .replace("shared: [instance]", "shared: [src/instance]")
    )
    project.commit("pyproject.toml and a src/ layout")
    result = project.deploy("push", check=True)
    # Only [project].dependencies decide the venv: MarkupSafe back to 3.0.4 makes a new one.
    assert "venv new" in result.stdout
    assert "release failed" not in result.stdout  # the release command imported the app from src/
    release = live_release(result.stdout)
    assert health(addresses(project)[0])["release"] == release
    assert get(addresses(project)[0], "/static/style.css")[0] == 200
    # Back to the flat layout (pyproject.toml stays) for the tests below.
    git(path, "mv", "src/flaskr", "flaskr")
    project.write_config(app_extra="requirements: pyproject.toml")
    project.set_version("v2")
    again = project.deploy("push", check=True)
    assert "venv reused" in again.stdout
    assert versions(project) == ["v2", "v2"]


def test_hooks_get_the_push_environment_and_a_failing_pre_hook_stops_everything(
    box: Sandbox, project: Project, tmp_path: Path
) -> None:
    local = tmp_path / "local-hook.txt"
    hooks = (
        "{pre_push: [{run: 'env | grep ^DEPLOY_ | sort > " + str(local) + "', on: local},"
        " {run: 'env | grep ^DEPLOY_ | sort > /tmp/host-hook.txt', on: hosts}],"
        " post_push: [{run: 'echo \"$DEPLOY_RESULT\" > /tmp/post-hook.txt', on: hosts}]}"
    )
    project.write_config(app_extra="requirements: pyproject.toml", hooks=hooks)
    project.set_version("v3")
    result = project.deploy("push", check=True)
    release = live_release(result.stdout)
    hosts = " ".join(addresses(project))
    expected = {
        "DEPLOY_ACTION": "push",
        "DEPLOY_APP": "flaskr",
        "DEPLOY_ENVIRONMENT": "default",
        "DEPLOY_HOSTS": hosts,
        "DEPLOY_RELEASE": release,
    }
    seen_local = dict(line.split("=", 1) for line in local.read_text().splitlines())
    # A local hook also inherits deploy's own environment (DEPLOY_SANDBOX_SUBNET, DEPLOY_SANDBOX_DIR...).
    inherited = {k: v for k, v in _env().items() if k.startswith("DEPLOY_") and k not in expected}
    assert seen_local == {**inherited, **expected}
    for host in project.hosts:
        text = box.run(host, ["cat", "/tmp/host-hook.txt"], check=True).stdout
        assert dict(line.split("=", 1) for line in text.splitlines()) == expected
        assert box.run(host, ["cat", "/tmp/post-hook.txt"], check=True).stdout == "ok\n"

    # A failing pre-push hook: nothing changes on any host.
    project.write_config(
        app_extra="requirements: pyproject.toml",
        hooks="{pre_push: [{run: 'echo smoke test failed >&2; exit 3', on: local}]}",
    )
    project.set_version("v4")
    listing = ["ls", "/srv/flaskr/releases"]
    before = [box.run(h, listing, check=True).stdout for h in project.hosts]
    failed = project.deploy("push")
    assert failed.returncode == 1
    assert "pre-push hook failed on local (exit 3): echo smoke test failed >&2; exit 3" in failed.stdout
    assert "smoke test failed" in failed.stdout
    assert "a pre-push hook failed: nothing was changed" in failed.stderr
    assert versions(project) == ["v3", "v3"]
    assert [box.run(h, listing, check=True).stdout for h in project.hosts] == before
    project.write_config(app_extra="requirements: pyproject.toml")
    project.set_version("v5")
    project.deploy("push", check=True)


def test_logs_prints_the_journal_and_follows_until_interrupted(project: Project) -> None:
    # Gunicorn's access log is opt-in (Nginx logs requests): turn it on, so requests reach the journal.
    # (The project ships pyproject.toml dependencies since the test before.)
    project.write_config(app_extra="requirements: pyproject.toml", extra="gunicorn: {access_log: true}")
    project.set_version("v-logs")
    project.deploy("push", check=True)
    marker = f"/logs-marker-{os.getpid()}"
    get(addresses(project)[0], marker)
    result = project.deploy("logs", "-n", "30", check=True)
    assert f'"GET {marker} HTTP/1.1"' in result.stdout
    follow = project.popen("logs", "-f", "-n", "0", "--host", addresses(project)[1])
    try:
        later = f"/followed-{os.getpid()}"
        stream = follow.stdout
        assert stream is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(stream), daemon=True)
        reader.start()
        deadline = time.monotonic() + 20
        # Requests until one shows up: the follower may take a moment to connect and start.
        while not any(later in line for line in list(seen)) and time.monotonic() < deadline:
            get(addresses(project)[1], later)
            time.sleep(0.5)
        assert any(later in line for line in list(seen)), seen
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=15) == 0
    finally:
        if follow.poll() is None:
            follow.kill()


def test_max_failures_with_batches_keeps_healthy_hosts_on_the_new_release(project: Project) -> None:
    extra = (
        "    import socket as _s\n"
        "    if _s.gethostname() == 'sandbox-2':\n"
        "        @app.before_request\n"
        "        def _broken():\n"
        "            return 'database unreachable', 500\n"
    )
    previous = versions(project)[1]  # what every host serves before this test
    project.set_version("v6-half", extra)
    result = project.deploy("push", "--batch", "1", "--max-failures", "1")
    out = result.stdout + result.stderr
    assert result.returncode == 1
    assert "answered 500: database unreachable" in out
    assert f"is live on {addresses(project)[0]}; 1 host(s) failed within the allowed 1" in out
    assert versions(project) == ["v6-half", previous]
    # Without the allowance, the same failure puts every host back.
    project.set_version("v7-half", extra)
    strict = project.deploy("push", "--batch", "1", "--max-failures", "0")
    assert strict.returncode == 1
    assert versions(project) == ["v6-half", previous]
    project.set_version("v8")
    project.deploy("push", check=True)
    assert versions(project) == ["v8", "v8"]


def test_ctrl_c_mid_push_puts_hosts_back_frees_the_lock_and_exits_130(project: Project) -> None:
    project.set_version("v9-slow", "    import time as _t\n    _t.sleep(4)\n")
    process = project.popen("push", "--json")
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        # The new release takes 4 s to boot: its health gate is waiting when Ctrl-C comes.
        if event.get("step") == "health" and event.get("status") == "start":
            break
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 130, rest
    assert "interrupted" in rest
    assert versions(project) == ["v8", "v8"]
    status = project.deploy("lock", "status", check=True)
    assert status.stdout.splitlines() == [f"{a}: free" for a in addresses(project)]
    history = json.loads(project.deploy("history", "--json", check=True).stdout)
    assert history[addresses(project)[0]][-1]["result"] in ("rolled back", "failed", "not started")
    project.set_version("v10")
    project.deploy("push", check=True)


def test_lock_release_asks_first_and_frees_a_lock_held_by_a_frozen_push(project: Project) -> None:
    project.write_config(
        app_extra="requirements: pyproject.toml", hooks="{pre_push: [{run: 'sleep 30', on: local}]}"
    )
    project.set_version("v11")
    frozen = project.popen("push")
    try:
        deadline = time.monotonic() + 30
        while "held by" not in project.deploy("lock", "status").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        os.kill(frozen.pid, signal.SIGSTOP)  # a laptop that went to sleep mid-push
        blocked = project.deploy("push")
        assert blocked.returncode == 1 and "the deploy lock is held by" in blocked.stderr
        asked = subprocess.run(
            [*project_command(), "lock", "release"],
            cwd=project.path,
            input="n\n",
            capture_output=True,
            text=True,
            env=project_env(),
            timeout=60,
        )
        assert asked.returncode == 1
        assert "End the push that holds the lock?" in asked.stdout
        assert "nothing was changed" in asked.stderr
        assert "held by" in project.deploy("lock", "status").stdout
        released = project.deploy("lock", "release", "--yes", check=True)
        for address in addresses(project):
            assert f"{address}: released (was held by" in released.stdout
        # The frozen push wakes up without its lock: it stops before its first step, changing nothing.
        os.kill(frozen.pid, signal.SIGCONT)
        woke = frozen.communicate(timeout=120)[0]
        assert frozen.returncode == 1, woke
        assert "this push no longer holds the deploy lock" in woke, woke
        assert "nothing switched for good" in woke, woke
        assert versions(project) == ["v10", "v10"]
        project.write_config(app_extra="requirements: pyproject.toml")
        project.set_version("v12")
        project.deploy("push", check=True)
        assert versions(project) == ["v12", "v12"]
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGKILL)
            os.kill(frozen.pid, signal.SIGCONT)
        frozen.wait(timeout=30)


def project_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "deploy"]


def project_env() -> dict[str, str]:
    from tests.hosts.pushkit import _env

    return _env()


def test_setup_takes_the_lock_and_its_dry_run_lists_the_https_steps(box: Sandbox, project: Project) -> None:
    project.write_config(
        app_extra="requirements: pyproject.toml", hooks="{pre_push: [{run: 'sleep 8', on: local}]}"
    )
    project.set_version("v13")
    pushing = project.popen("push")
    try:
        deadline = time.monotonic() + 30
        while "held by" not in project.deploy("lock", "status").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        blocked = project.deploy("setup")
        assert blocked.returncode == 1
        assert "the deploy lock is held by" in blocked.stderr and "push of release" in blocked.stderr
    finally:
        pushing.communicate(timeout=120)
    assert pushing.returncode == 0
    project.write_config(app_extra="requirements: pyproject.toml")
    config = project.path / "deploy.yaml"
    config.write_text(config.read_text().replace("tls: false", "tls: {email: ops@flaskr.test}"))
    project.commit("https")
    listing = ["ls", "/etc/nginx/sites-enabled", "/etc/letsencrypt"]
    before = box.run(project.hosts[0], listing).stdout
    dry = project.deploy("setup", "--dry-run", check=True)
    out = dry.stdout
    assert "then HTTPS (certificates), in this order:" in out
    for step in ("tls: site before certbot", "tls: prepare certbot", "tls: ACME account", "tls: certificate"):
        assert f"  [{step}]" in out
    assert "certbot certonly" in out or "certonly" in out
    assert box.run(project.hosts[0], listing).stdout == before
    project.write_config(app_extra="requirements: pyproject.toml")
    project.commit("http again")


@pytest.mark.parametrize("wheelhouse", ["uv", "pip"])
def test_a_requirement_only_the_hosts_python_needs_is_shipped_and_installed(
    box: Sandbox, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wheelhouse: str
) -> None:
    """pip evaluates markers for the Python that runs it (this machine's): deploy adds what the
    host's markers require. markerdemo needs markerdemo_old only on the host's exact Python. uv (the
    default wheelhouse) resolves for the host's Python itself; pip's path is the fallback."""
    monkeypatch.setenv("DEPLOY_WHEELHOUSE", wheelhouse)
    from tests.unit.push.test_wheels import make_wheel

    host_python = box.run(
        project.hosts[0], ["python3", "-c", "import platform; print(platform.python_version())"], check=True
    ).stdout.strip()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(
        wheels,
        "markerdemo",
        "1.0",
        f'markerdemo_old; python_full_version == "{host_python}"',
        f'markerdemo_new; python_full_version != "{host_python}"',
    )
    make_wheel(wheels, "markerdemo_old", "1.0")
    make_wheel(wheels, "markerdemo_new", "1.0")
    monkeypatch.setenv("PIP_FIND_LINKS", f"{wheels} {os.environ.get('PIP_FIND_LINKS', '')}".strip())
    # An empty wheel cache: a cache kept from an earlier run would skip the download and its message.
    monkeypatch.setenv("DEPLOY_WHEEL_CACHE", str(tmp_path / "wheel-cache"))
    pinned = (EXAMPLE / "requirements.txt").read_text()
    # A comment per case: each gets a new venv.
    (project.path / "host-requirements.txt").write_text(f"{pinned}markerdemo==1.0\n# {wheelhouse}\n")
    project.write_config(app_extra="requirements: host-requirements.txt")
    project.commit("a requirement with a marker on the host's Python")
    result = project.deploy("push", check=True)
    assert "venv new" in result.stdout
    if wheelhouse == "pip" and platform.python_version() != host_python:  # pip skipped it: deploy said so
        assert (
            f"  + markerdemo_old-1.0-py3-none-any.whl for Python {host_python}: markerdemo-old (required by "
            f'markerdemo 1.0 when python_full_version == "{host_python}")'
        ) in result.stdout
    assert installed(box, project, "markerdemo_old") == "1.0"
    missing = box.run(
        project.hosts[1], ["/srv/flaskr/current/.venv/bin/python", "-c", "import markerdemo_new"]
    )
    assert missing.returncode != 0
