"""The sandbox acts as root only on what it made: a hostile state file or state folder is refused.

`deploy sandbox down` kills the processes of network namespaces, deletes links, mounts and files. It
reads their names from `state.json` in $DEPLOY_SANDBOX_DIR; every name there must be the sandbox's
own (its pattern and its tag), and the folder must be new, empty or the sandbox's own (its marker).
The victims here are real: a network namespace with a process in it and a dummy link, made with
`ip`, and key files in a folder that is not the sandbox's. Needs root (as the sandbox does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import MARKER, Sandbox

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(os.geteuid() != 0, reason="makes a real network namespace: needs root"),
]


def deploy(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPLOY_SANDBOX_DIR": str(state_dir), "DEPLOY_SANDBOX_SUBNET": "10.95.0.0/16"}
    return subprocess.run(
        [sys.executable, "-m", "deploy", "sandbox", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def victim() -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """Another program's network namespace (with a process in it) and link: they must survive."""
    suffix = uuid.uuid4().hex[:6]
    netns, link = f"other-app-{suffix}", f"othr{suffix}"
    process = None
    try:
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p"], check=True)
        process = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "300"])
        yield netns, link, process
    finally:
        if process is not None:
            process.kill()
            process.wait()
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)


def own_state(state_dir: Path, **host_changes: object) -> Path:
    """A state folder as `up` leaves it (marker, state.json for one host), with `host_changes` applied."""
    sandbox = Sandbox(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / MARKER).write_text("deploy sandbox\n")
    host = {
        "name": "sandbox-1",
        "address": "10.95.1.2",
        "gateway": "10.95.1.1",
        "netns": f"deploy-{sandbox.tag}-sandbox-1",
        "veth": f"dsb{sandbox.tag}-1",
        "machine_dir": str(sandbox.machines_dir / "sandbox-1"),
        "mode": "overlay",
        "key": str(sandbox.key),
        "known_hosts": str(sandbox.known_hosts),
        "environment_file": str(sandbox.environment_file),
        "pid": None,
        "user": "root",
        "port": 22,
        **host_changes,
    }
    state = {
        "version": 1,
        "status": "up",
        "rootfs": "/var/cache/deploy/rootfs",
        "hosts": [host],
        "acme": None,
    }
    sandbox.state_file.write_text(json.dumps(state))
    return sandbox.state_file


def alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@pytest.mark.parametrize("field", ["netns", "veth"])
def test_a_state_file_naming_another_namespace_or_link_touches_nothing(
    tmp_path: Path, victim: tuple[str, str, subprocess.Popen[bytes]], field: str
) -> None:
    netns, link, process = victim
    state_dir = tmp_path / "state"
    own_state(state_dir, **{field: netns if field == "netns" else link})
    result = deploy(state_dir, "down")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"hosts[0].{field}" in result.stderr and "nothing was stopped or removed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert alive(process) and Path("/run/netns", netns).exists() and Path("/sys/class/net", link).exists()
    assert (state_dir / "state.json").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "../../etc"},
        {"machine_dir": "/tmp/../etc"},
        {"key": "/root/.ssh/id_ed25519"},
        {"environment_file": "../../environment.yaml"},
        {"netns": "deploy-0000-sandbox-1"},  # another sandbox's tag
        {"pid": "1; rm -rf /"},
        {"surprise": "key"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_state_file_with_foreign_names_or_paths_is_refused(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    state_dir = tmp_path / "state"
    state_file = own_state(state_dir, **changes)
    before = state_file.read_text()
    # Every command that reads the state refuses it (up and list for one kind: the check is shared).
    commands = [("down",), ("up",), ("list",)] if "name" in changes else [("down",)]
    for args in commands:
        result = deploy(state_dir, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "does not describe this sandbox" in result.stderr
    assert state_file.read_text() == before


@pytest.mark.parametrize("command", ["down", "up"])
def test_a_state_folder_that_is_not_the_sandboxs_is_refused(tmp_path: Path, command: str) -> None:
    """DEPLOY_SANDBOX_DIR naming ~/.ssh: its key and known_hosts are not the sandbox's to delete."""
    folder = tmp_path / "dot-ssh"
    folder.mkdir()
    files = {"id_ed25519": "PRIVATE KEY\n", "id_ed25519.pub": "ssh-ed25519 AAA\n", "known_hosts": "h k\n"}
    for name, text in files.items():
        (folder / name).write_text(text)
    result = deploy(folder, command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and MARKER in result.stderr
    assert {p.name: p.read_text() for p in folder.iterdir()} == files


def test_a_new_or_empty_folder_becomes_the_sandboxs_and_down_removes_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    sandbox = Sandbox(empty)
    sandbox._claim()
    assert (empty / MARKER).is_file()
    sandbox._claim()  # its own folder: accepted again
    result = deploy(empty, "down")
    assert result.returncode == 0, result.stderr
    assert not empty.exists()
    assert deploy(tmp_path / "never-made", "down").returncode == 0


def test_down_accepts_the_sandboxs_own_state(tmp_path: Path) -> None:
    """The sandbox's own names pass: down on the state of a sandbox that is no longer running succeeds."""
    state_dir = tmp_path / "state"
    own_state(state_dir)
    result = deploy(state_dir, "down")
    assert result.returncode == 0, result.stderr
    assert not state_dir.exists()


@pytest.mark.parametrize("name", ["machines", "acme", "state.json"])
def test_a_link_planted_in_the_state_folder_is_refused(tmp_path: Path, name: str) -> None:
    """down removes machines/ and acme/ with everything in them: never through a symbolic link."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep\n")
    state_dir = tmp_path / "state"
    own_state(state_dir)
    target = state_dir / name
    target.unlink(missing_ok=True)
    target.symlink_to(victim / "precious" if name == "state.json" else victim)
    result = deploy(state_dir, "down")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "symbolic link" in result.stderr
    assert (victim / "precious").read_text() == "keep\n" and target.is_symlink()
