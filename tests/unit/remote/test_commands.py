"""Root never follows a link the app user planted: the commands setup, push and rollback run as root,
run here as root against folders owned by an unprivileged user (nobody), with a root-owned canary."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from deploy.plan import Command
from deploy.remote import commands as cmd

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(os.geteuid() != 0, reason="changes owners: needs root"),
]

APP = "nobody"
APP_GROUP = "nogroup"
APP_UID = 65534


def run(command: Command, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command.argv, input=stdin, capture_output=True, timeout=30, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """base (root 0755) with shared/ (root:app 0750) and shared/instance (the app's), and a canary
    root file and folder outside it that the app must never gain."""
    os.chmod(tmp_path, 0o755)
    base = tmp_path / "srv"
    shared = base / "shared"
    instance = shared / "instance"
    instance.mkdir(parents=True)
    os.chmod(base, 0o755)
    os.chown(shared, 0, APP_UID)
    os.chmod(shared, 0o750)
    os.chown(instance, APP_UID, APP_UID)
    canary_dir = tmp_path / "canary-dir"
    canary_dir.mkdir(mode=0o700)
    canary = tmp_path / "canary"
    canary.write_text("root's\n")
    os.chmod(canary, 0o600)
    return {"base": base, "shared": shared, "instance": instance, "canary": canary, "canary_dir": canary_dir}


def plant(link: Path, target: Path) -> None:
    """A symlink the app user made."""
    link.symlink_to(target)
    os.lchown(link, APP_UID, APP_UID)


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_making_an_app_folder_never_follows_a_link_the_app_planted(tree: dict[str, Path]) -> None:
    # shared: [instance, instance/uploads]: uploads lives in a folder the app owns.
    plant(tree["instance"] / "uploads", tree["canary_dir"])
    before = owner_mode(tree["canary_dir"])
    result = run(cmd.make_dir(str(tree["instance"] / "uploads"), APP, APP_GROUP, 0o750))
    assert owner_mode(tree["canary_dir"]) == before
    assert result.returncode == 73
    assert b"is a symlink that a user other than root could have made" in result.stdout


def test_making_an_app_folder_never_follows_a_link_in_a_parent(tree: dict[str, Path]) -> None:
    plant(tree["instance"] / "a", tree["canary_dir"])
    before = owner_mode(tree["canary_dir"])
    result = run(cmd.make_dir(str(tree["instance"] / "a" / "b"), APP, APP_GROUP, 0o750))
    assert result.returncode == 73
    assert owner_mode(tree["canary_dir"]) == before
    assert not (tree["canary_dir"] / "b").exists()


def test_making_folders_creates_parents_and_sets_owner_and_mode(tree: dict[str, Path]) -> None:
    target = tree["instance"] / "x" / "y"
    result = run(cmd.make_dir(str(target), APP, APP_GROUP, 0o750))
    assert result.returncode == 0, result.stdout
    assert owner_mode(target) == (APP_UID, APP_UID, 0o750)
    assert owner_mode(target.parent)[::2] == (0, 0o755)
    # Run again on what exists: the same, nothing else changes.
    assert run(cmd.make_dir(str(target), APP, APP_GROUP, 0o750)).returncode == 0
    assert owner_mode(target) == (APP_UID, APP_UID, 0o750)


def test_a_root_made_link_in_a_root_only_folder_is_followed(tmp_path: Path) -> None:
    """Like Debian's /var/run -> /run: root made the link where only root can change it."""
    os.chmod(tmp_path, 0o755)
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert run(cmd.make_dir(str(tmp_path / "alias" / "d"), "root", "root", 0o700)).returncode == 0
    assert owner_mode(real / "d") == (0, 0, 0o700)


def test_removing_a_releases_own_copy_never_deletes_through_its_link_into_shared(
    tree: dict[str, Path], tmp_path: Path
) -> None:
    release = tree["base"] / "releases" / "r2"
    release.mkdir(parents=True)
    (tree["instance"] / "uploads").mkdir()
    data = tree["instance"] / "uploads" / "photo.jpg"
    data.write_bytes(b"persistent")
    (release / "instance").symlink_to(tree["instance"])
    own = release / "own"
    own.mkdir()
    (own / "file").write_text("x")
    result = run(
        cmd.remove_paths(str(release), ["instance/uploads", "instance/uploads/photo.jpg", "own"], "drop")
    )
    assert result.returncode == 0, result.stdout
    assert data.read_bytes() == b"persistent"
    assert not own.exists()
    # Removing the shared name itself removes the release's link, never the data it points at.
    assert run(cmd.remove_paths(str(release), ["instance"], "drop")).returncode == 0
    assert not (release / "instance").is_symlink() and data.read_bytes() == b"persistent"


def test_remove_tree_removes_a_link_not_its_target(tree: dict[str, Path]) -> None:
    link = tree["base"] / "current"
    link.symlink_to(tree["canary_dir"])
    (tree["canary_dir"] / "keep").write_text("k")
    assert run(cmd.remove_tree(str(link))).returncode == 0
    assert not link.is_symlink() and (tree["canary_dir"] / "keep").exists()


def test_writing_a_file_in_a_folder_the_app_can_change_is_refused(tree: dict[str, Path]) -> None:
    target = tree["instance"] / "config.py"
    # The app plants the temporary name deploy writes first, pointing at a root file.
    plant(Path(f"{target}{cmd.TMP}"), tree["canary"])
    before = (tree["canary"].read_bytes(), owner_mode(tree["canary"]))
    content = b"owned\n"
    argv = cmd.write_stdin_argv(str(target), 0o644, APP, APP_GROUP, hashlib.sha256(content).hexdigest())
    result = run(Command(argv), content)
    assert result.returncode == 73, result.stdout
    assert (tree["canary"].read_bytes(), owner_mode(tree["canary"])) == before
    assert not target.exists()


def test_writing_a_file_where_only_root_writes_works(tree: dict[str, Path]) -> None:
    target = tree["base"] / "f.conf"
    content = b"hello\n"
    argv = cmd.write_stdin_argv(str(target), 0o640, "root", APP_GROUP, hashlib.sha256(content).hexdigest())
    result = run(Command(argv), content)
    assert result.returncode == 0, result.stdout
    assert target.read_bytes() == content and owner_mode(target) == (0, APP_UID, 0o640)


def test_a_link_into_a_folder_the_app_can_change_is_refused(tree: dict[str, Path]) -> None:
    result = run(cmd.symlink("/etc/shadow", str(tree["instance"] / "x")))
    assert result.returncode == 73
    assert not (tree["instance"] / "x").is_symlink()
    assert run(cmd.symlink(str(tree["instance"]), str(tree["base"] / "link"))).returncode == 0
    assert os.readlink(tree["base"] / "link") == str(tree["instance"])


@pytest.fixture
def nginx_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A real nginx (the system's binary) reading its own configuration folder under tmp_path."""
    import shutil

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx is not installed")
    conf = tmp_path / "nginx"
    for folder in ("conf.d", "sites-enabled", "sites-available", "snippets", "logs"):
        (conf / folder).mkdir(parents=True)
    (conf / "nginx.conf").write_text(
        f"pid {conf}/nginx.pid;\nerror_log {conf}/logs/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {conf}/conf.d/*.conf;\n"
        f"    include {conf}/sites-enabled/*;\n}}\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nginx"
    wrapper.write_text(f'#!/bin/sh\nexec {binary} -p {conf} -c {conf}/nginx.conf "$@"\n')
    wrapper.chmod(0o755)
    return conf, {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_configuration_nginx_rejects_is_put_back_byte_for_byte(
    nginx_root: tuple[Path, dict[str, str]],
) -> None:
    conf, env = nginx_root
    site = conf / "sites-available" / "shop.conf"
    site.write_bytes(b"server { listen 127.0.0.1:18080; }\n")
    os.chown(site, 0, APP_UID)
    os.chmod(site, 0o640)
    old_link_target = str(conf / "sites-available" / "old.conf")
    (conf / "sites-available" / "old.conf").write_text("# old\n")
    (conf / "sites-enabled" / "shop.conf").symlink_to(old_link_target)
    default = conf / "sites-enabled" / "default"
    default.write_text("# Debian's default\n")
    snapshot = {p: (p.read_bytes(), os.lstat(p)) for p in (site, default)}
    new_snippet = conf / "snippets" / "shop-proxy.conf"
    new_catch_all = conf / "conf.d" / "deploy-catch-all.conf"
    actions = cmd.nginx_change(
        [
            (
                str(site),
                b"server { listen 127.0.0.1:18080; include " + str(new_snippet).encode() + b"; }\n",
                "site",
            ),
            (str(new_snippet), b"proxy_bogus_directive on;\n", "snippet"),
            (str(new_catch_all), b"server { listen 127.0.0.1:18081; return 444; }\n", "catch-all"),
        ],
        [(str(site), str(conf / "sites-enabled" / "shop.conf"))],
        [str(default)],
    )
    from deploy.remote.executor import step_script

    result = subprocess.run(
        ["sh", "-s"], input=step_script(list(actions)), capture_output=True, text=True, env=env
    )
    assert result.returncode == 1, result.stdout
    assert 'unknown directive "proxy_bogus_directive"' in result.stdout
    assert "the previous Nginx files are back in place" in result.stdout
    for path, (data, st) in snapshot.items():
        now = os.lstat(path)
        assert path.read_bytes() == data and (now.st_mode, now.st_uid, now.st_gid) == (
            st.st_mode,
            st.st_uid,
            st.st_gid,
        )
    assert os.readlink(conf / "sites-enabled" / "shop.conf") == old_link_target
    assert not new_snippet.exists() and not new_catch_all.exists()
    leftovers = [p.name for p in conf.rglob("*") if p.name.endswith((cmd.STAGED, cmd.TMP, ".deploy-restore"))]
    assert leftovers == []


def test_a_stale_temporary_name_is_replaced_never_followed(tree: dict[str, Path]) -> None:
    # A write or a link killed between its temporary file and its rename leaves that name behind.
    target = tree["base"] / "site.conf"
    Path(f"{target}{cmd.TMP}").symlink_to(tree["canary"])
    content = b"server {}\n"
    argv = cmd.write_stdin_argv(str(target), 0o644, "root", "root", hashlib.sha256(content).hexdigest())
    assert run(Command(argv), content).returncode == 0
    assert target.read_bytes() == content and not target.is_symlink()
    assert tree["canary"].read_text() == "root's\n" and owner_mode(tree["canary"]) == (0, 0, 0o600)
    link = tree["base"] / "current"
    Path(f"{link}{cmd.TMP}").symlink_to(tree["canary_dir"])
    assert run(cmd.symlink("/srv/one", str(link))).returncode == 0
    assert run(cmd.symlink("/srv/two", str(link))).returncode == 0
    assert os.readlink(link) == "/srv/two" and not Path(f"{link}{cmd.TMP}").is_symlink()
