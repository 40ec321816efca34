"""The artifact: committed HEAD only (dirty trees refused), content hashes, changed-file sets, wheel tags."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from deploy.push.artifact import ArtifactError, Platform, changes, pack, requirements_hash, tarball

pytestmark = pytest.mark.unit


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("v = 1\n")
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    (tmp_path / ".gitignore").write_text(".env\n")
    (tmp_path / ".env").write_text("SECRET_KEY=never-shipped\n")
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "data.txt").write_text("host data\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_pack_ships_the_commit_without_secrets_or_shared_paths(repo: Path) -> None:
    artifact = pack(repo, "requirements.txt", exclude=("instance",))
    assert sorted(artifact.files) == [".gitignore", "app/__init__.py", "requirements.txt"]
    assert not artifact.dirty and len(artifact.commit) == 40 and artifact.timestamp > 0


def test_a_dirty_tree_is_refused_unless_allowed(repo: Path) -> None:
    (repo / "app" / "__init__.py").write_text("v = 2\n")
    with pytest.raises(ArtifactError, match=r"uncommitted changes \(app/__init__.py\).*--allow-dirty"):
        pack(repo, "requirements.txt")
    artifact = pack(repo, "requirements.txt", allow_dirty=True, exclude=("instance",))
    assert artifact.dirty and artifact.files["app/__init__.py"].data == b"v = 2\n"
    assert artifact.short.endswith("-dirty") and ".env" not in artifact.files


def test_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not in a git repository"):
        pack(tmp_path, "requirements.txt")


def test_only_changed_files_are_sent(repo: Path) -> None:
    before = pack(repo, "requirements.txt", exclude=("instance",))
    (repo / "app" / "__init__.py").write_text("v = 2\n")
    (repo / "requirements.txt").unlink()
    (repo / "requirements-prod.txt").write_text("flask\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two")
    after = pack(repo, "requirements-prod.txt", exclude=("instance",))
    send, delete = changes(after, before.manifest)
    assert send == ["app/__init__.py", "requirements-prod.txt"] and delete == ["requirements.txt"]
    assert changes(after, after.manifest) == ([], [])
    with tarfile.open(fileobj=io.BytesIO(tarball(after.files, send, 1700000000))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == send and {m.mtime for m in members} == {1700000000}


def test_venv_key_follows_requirements_python_and_platform() -> None:
    base = requirements_hash(b"flask==3.1.3\n", "3.11.2", "cp311-glibc2.36-x86_64")
    assert base == requirements_hash(b"flask==3.1.3\n", "3.11.2", "cp311-glibc2.36-x86_64")
    # The full version: markers such as python_full_version <= "3.11.2" change the wheels.
    assert base != requirements_hash(b"flask==3.1.3\n", "3.11.9", "cp311-glibc2.36-x86_64")
    assert base != requirements_hash(b"flask==3.1.4\n", "3.11.2", "cp311-glibc2.36-x86_64")
    assert base != requirements_hash(b"flask==3.1.3\n", "3.12.1", "cp312-glibc2.36-x86_64")


def test_platform_tags_for_pip_download() -> None:
    tags = Platform("3.11.2", "x86_64", "glibc", "2.36").pip_platforms()
    assert (
        tags[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in tags and tags[-1] == "linux_x86_64"
    )
    assert Platform("3.11.2", "aarch64", "musl", "1.2").pip_platforms() == ["linux_aarch64"]


def test_project_identity_is_the_root_commit_of_every_full_clone(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from deploy.push.artifact import project_identity

    elsewhere = tmp_path_factory.mktemp("elsewhere")  # outside the repository

    root = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert project_identity(repo) == root
    (repo / "more.txt").write_text("more\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "more")
    assert project_identity(repo) == root  # later commits do not change it
    subprocess.run(["git", "clone", "-q", str(repo), str(elsewhere / "full")], check=True)
    assert project_identity(elsewhere / "full") == root
    # A shallow clone (CI's usual checkout) does not know its root: nothing to check then.
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(elsewhere / "ci")], check=True
    )
    assert project_identity(elsewhere / "ci") is None
    (elsewhere / "plain").mkdir()
    assert project_identity(elsewhere / "plain") is None


# --- secret files: one list for every path that ships files ------------------------------------

#: One file of each kind of secret, at the top and in a subfolder: never shipped.
SECRET_FILES = (
    ".env",
    ".env.production",
    ".env.local",
    "prod.env",
    ".envrc",
    "server.pem",
    "certs/site.key",
    "client.p12",
    "client.pfx",
    "store.jks",
    "vault.kdbx",
    "deploy.ppk",
    "id_rsa",
    "id_ed25519",
    "keys/id_ecdsa",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials.json",
    "client_secret_1234.json",
    "secrets.json",
    "config/secrets.yaml",
    "prod.tfvars",
    "terraform.tfstate",
    ".ssh/config",
    ".aws/credentials",
    ".gnupg/pubring.kbx",
    "secrets/db_password",
)
#: Names that resemble secrets but are ordinary source or committed templates: shipped.
NOT_SECRET_FILES = (
    "app/keys.py",
    "app/monkey.py",
    "app/id_utils.py",
    "app/secret_santa.py",
    "app/credentials.py",
    "app/environment.py",
    ".env.example",
    ".env.sample",
    ".env.template",
    "docs/pem.md",
)


def _write(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}: SECRET-VALUE\n")


def test_untracked_secret_files_are_never_shipped_with_allow_dirty(repo: Path) -> None:
    _write(repo, SECRET_FILES + NOT_SECRET_FILES)
    artifact = pack(repo, "requirements.txt", allow_dirty=True, exclude=("instance",))
    shipped = set(artifact.files)
    assert not shipped & set(SECRET_FILES), sorted(shipped & set(SECRET_FILES))
    assert set(NOT_SECRET_FILES) <= shipped
    assert not artifact.withheld  # untracked secrets are simply left out


def test_tracked_secret_files_are_withheld_and_named(repo: Path) -> None:
    _write(repo, SECRET_FILES + NOT_SECRET_FILES)
    git(repo, "add", "-f", "-A")
    git(repo, "commit", "-qm", "secrets committed by mistake")
    for allow_dirty in (False, True):
        if allow_dirty:  # the working tree, as git sees it, rather than the commit
            (repo / "app" / "__init__.py").write_text("v = 2\n")
        artifact = pack(repo, "requirements.txt", allow_dirty=allow_dirty, exclude=("instance",))
        assert artifact.dirty == allow_dirty
        assert not set(artifact.files) & set(SECRET_FILES)
        assert set(NOT_SECRET_FILES) <= set(artifact.files)
        assert artifact.withheld == tuple(sorted(SECRET_FILES))


def test_untracked_secret_files_do_not_make_the_tree_dirty(repo: Path) -> None:
    _write(repo, SECRET_FILES)
    artifact = pack(repo, "requirements.txt", exclude=("instance",))
    assert not artifact.dirty


def test_no_shipped_file_is_world_readable_but_static_files_are(repo: Path) -> None:
    (repo / "app" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "app" / "run.sh").chmod(0o777)
    (repo / "app" / "static" / "css").mkdir(parents=True)
    (repo / "app" / "static" / "css" / "site.css").write_text("body {}\n")
    (repo / "app" / "static" / "css" / "site.css").chmod(0o666)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "static")
    for allow_dirty in (False, True):
        if allow_dirty:
            (repo / "app" / "__init__.py").write_text("v = 3\n")
        artifact = pack(
            repo, "requirements.txt", allow_dirty=allow_dirty, exclude=("instance",), public=("app/static",)
        )
        assert artifact.dirty == allow_dirty
        modes = {name: entry.mode for name, entry in artifact.files.items()}
        assert modes["app/__init__.py"] == 0o640 and modes["app/run.sh"] == 0o750
        assert modes["app/static/css/site.css"] == 0o644  # Nginx serves it
        with tarfile.open(fileobj=io.BytesIO(tarball(artifact.files, sorted(modes), group="demo"))) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert members["app/__init__.py"].mode == 0o640 and members["app/__init__.py"].gname == "demo"
        assert members["app/__init__.py"].uname == "root"


def test_names_git_would_quote_are_read_as_they_are(repo: Path) -> None:
    """git status quotes names with spaces or non-ASCII bytes: a secret there is still a secret, and
    the error names a changed file as it is; a rename names both paths."""
    _write(repo, ("café/.env.production", "my keys/id_ed25519", 'odd"name/.pgpass'))
    assert not pack(repo, "requirements.txt", exclude=("instance",)).dirty
    (repo / "café" / "new file.py").write_text("x = 1\n")
    with pytest.raises(ArtifactError, match=r"uncommitted changes \(café/new file.py\)"):
        pack(repo, "requirements.txt", exclude=("instance",))
    git(repo, "mv", "app/__init__.py", "app/main.py")
    with pytest.raises(ArtifactError, match=r"uncommitted changes \(app/main.py, app/__init__.py, café/new"):
        pack(repo, "requirements.txt", exclude=("instance",))
