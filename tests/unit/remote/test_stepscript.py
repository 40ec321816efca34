"""Step scripts run here by the real sh and python3, as root: consecutive uploads and safe-file operations
run as one `SAFE_FS batch` program and keep every guarantee of the one-program-each form (order, the
first failure named by its index and stopping the rest, a cut script never completing a file)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from deploy.plan import Command, Upload
from deploy.remote import commands as cmd
from deploy.remote.stepscript import _FAILED_LINE, step_script

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(os.geteuid() != 0, reason="changes owners: needs root"),
]


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_consecutive_operations_run_in_one_program_in_order(root: Path) -> None:
    release = root / "rel"
    # A name with a space, a newline and a quote: arguments travel in hex, nothing to quote wrongly.
    odd = "a b\n'c"
    actions: list[Command | Upload] = [
        cmd.make_dir(str(release), "root", "nogroup", 0o750),
        Upload(str(release / odd), b"first\n", 0o640, "root", "nogroup"),
        Upload(str(release / "big"), os.urandom(200_000), 0o600),
        cmd.symlink(str(release / odd), str(root / "current")),
        cmd.remove_paths(str(release), ["big"], "drop big"),
        Command(("true",), "not a safe-file operation"),
        Upload(str(release / "last"), b"", 0o644),
    ]
    script = step_script(actions)
    assert script.count(" batch <<") == 1  # the first five; the upload after `true` runs alone
    result = sh(script)
    assert result.returncode == 0, result.stdout
    assert (release / odd).read_bytes() == b"first\n"
    st = (release / odd).stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 65534)
    assert stat.S_IMODE(release.stat().st_mode) == 0o750
    assert os.readlink(root / "current") == str(release / odd)
    assert not (release / "big").exists() and (release / "last").read_bytes() == b""
    assert sorted(p.name for p in release.iterdir()) == sorted([odd, "last"])


def test_the_first_failure_is_named_and_stops_the_rest(root: Path) -> None:
    open_folder = root / "open"
    open_folder.mkdir(mode=0o777)
    os.chmod(open_folder, 0o777)  # any user can change it: root writes nothing there
    actions: list[Command | Upload] = [
        Upload(str(root / "one"), b"1", 0o644),
        cmd.symlink("/etc/shadow", str(open_folder / "x")),
        Upload(str(root / "three"), b"3", 0o644),
    ]
    result = sh(step_script(actions))
    assert result.returncode == 73, result.stdout
    match = _FAILED_LINE.search(result.stdout)
    assert match and match.groups() == ("1", "73")
    assert "deploy: refused:" in result.stdout
    assert (root / "one").read_bytes() == b"1"
    assert not (open_folder / "x").is_symlink() and not (root / "three").exists()


@pytest.mark.parametrize("cut_in", ["the second upload", "the second operation's line"])
def test_a_batch_cut_short_never_completes_what_it_did_not_receive(root: Path, cut_in: str) -> None:
    (root / "two").write_bytes(b"old\n")
    actions: list[Command | Upload] = [
        Upload(str(root / "one"), b"1", 0o644),
        Upload(str(root / "two"), b"new\n" * 20_000, 0o644),
        Upload(str(root / "three"), b"3", 0o644),
    ]
    script = step_script(actions)
    second = script.index("\n1 x") + 1
    cut = (
        script[: script.index("\n", second + 200) + 1]
        if cut_in == "the second upload"
        else script[: second + 9]
    )
    result = sh(cut)
    assert result.returncode == 74, result.stdout
    assert (root / "two").read_bytes() == b"old\n" and not (root / "three").exists()
    assert not any(p.name.endswith(cmd.TMP) for p in root.iterdir())
