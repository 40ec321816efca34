"""The committed files read from git's tree with the blob-hash cache (#19): the same manifest as `git
archive` gives after every kind of change, and only the files a push needs are read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from deploy.push import gittree
from deploy.push.artifact import Artifact, _archive, pack
from tests.unit.push.test_artifact import git

pytestmark = pytest.mark.unit


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache" / "blob-sha256"
    monkeypatch.setenv("DEPLOY_HASH_CACHE", str(path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no global git attributes
    return path


@pytest.fixture
def repo(tmp_path: Path, cache: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app" / "static").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("v = 1\n")
    (root / "app" / "views.py").write_text("def index():\n    return 'hi'\n")
    (root / "app" / "static" / "site.css").write_text("body {}\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "requirements.txt").write_text("flask==3.1.3\n")
    os.symlink("app/views.py", root / "views-link.py")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return root


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def _packed(repo: Path) -> Artifact:
    return pack(repo, "requirements.txt", public=("app/static",))


def _archived(repo: Path) -> dict[str, list[object]]:
    """The manifest as `git archive` gives it (the reference)."""
    files, _ = _archive(repo, "", (), ("app/static",))
    return Artifact("x", False, files, "requirements.txt").manifest


def test_a_warm_cache_reads_only_what_is_needed_and_the_bytes_on_demand(repo: Path, cache: Path) -> None:
    first = _packed(repo)
    assert first.manifest == _archived(repo)
    assert cache.read_text().count("\n") == 5  # the five regular files' blobs (the link reads its target)
    second = _packed(repo)
    assert second.manifest == first.manifest
    read = sorted(name for name, entry in second.files.items() if entry.loaded)
    assert read == ["requirements.txt", "views-link.py"]  # the venv key needs it; a link is its target
    views = second.files["app/views.py"]
    assert views.data == b"def index():\n    return 'hi'\n" and views.loaded
    assert views.digest == hashlib.sha256(views.data).hexdigest()


@pytest.mark.parametrize("change", ["content", "mode", "rename", "deletion", "link"])
def test_every_change_shows_in_the_manifest_with_a_warm_cache(repo: Path, change: str) -> None:
    before = _packed(repo)
    if change == "content":
        (repo / "app" / "views.py").write_text("def index():\n    return 'hello'\n")
    elif change == "mode":
        (repo / "app" / "views.py").chmod(0o755)
    elif change == "rename":
        git(repo, "mv", "app/views.py", "app/pages.py")
    elif change == "deletion":
        git(repo, "rm", "-q", "app/views.py")
    else:
        (repo / "views-link.py").unlink()
        os.symlink("app/__init__.py", repo / "views-link.py")
    _commit(repo, change)
    after = _packed(repo)
    assert after.manifest == _archived(repo) != before.manifest
    changed = {
        p for p in {*before.manifest, *after.manifest} if before.manifest.get(p) != after.manifest.get(p)
    }
    expected = {
        "content": {"app/views.py"},
        "mode": {"app/views.py"},
        "rename": {"app/views.py", "app/pages.py"},
        "deletion": {"app/views.py"},
        "link": {"views-link.py"},
    }[change]
    assert changed == expected
    if change == "content":
        assert after.files["app/views.py"].data == b"def index():\n    return 'hello'\n"
    if change == "mode":
        assert after.files["app/views.py"].mode == 0o750
    if change == "rename":
        assert after.files["app/pages.py"].digest == before.files["app/views.py"].digest


def test_a_damaged_cache_line_is_ignored(repo: Path, cache: Path) -> None:
    good = _packed(repo).manifest
    cache.write_text(cache.read_text()[:-30])  # a write cut short
    assert _packed(repo).manifest == good


def test_a_project_in_a_subfolder_ships_its_own_files(repo: Path) -> None:
    (repo / "app" / "requirements.txt").write_text("flask\n")
    _commit(repo, "sub")
    artifact = pack(repo / "app", "requirements.txt")
    assert sorted(artifact.files) == ["__init__.py", "requirements.txt", "static/site.css", "views.py"]
    files, _ = _archive(repo, "app/", (), ())
    assert artifact.manifest == Artifact("x", False, files, "requirements.txt").manifest


def test_attributes_git_archive_applies_send_the_pack_through_git_archive(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.css linguist-vendored\n")
    _commit(repo, "harmless attributes")
    _packed(repo)
    assert not _packed(repo).files["app/views.py"].loaded  # still read from the tree
    (repo / ".gitattributes").write_text("run.sh export-ignore\n*.py text eol=crlf\n")
    _commit(repo, "archive attributes")
    artifact = _packed(repo)
    assert "run.sh" not in artifact.files  # git archive left it out
    assert artifact.files["app/views.py"].data == b"def index():\r\n    return 'hi'\r\n"
    assert artifact.manifest == _archived(repo)


def test_core_autocrlf_sends_the_pack_through_git_archive(repo: Path) -> None:
    git(repo, "config", "core.autocrlf", "true")
    artifact = _packed(repo)
    assert artifact.files["app/views.py"].data == b"def index():\r\n    return 'hi'\r\n"


def test_changes_bytes_names_only_what_git_archive_applies() -> None:
    assert gittree.changes_bytes(b"*.js -text\n")
    assert gittree.changes_bytes(b"docs/ export-ignore\n")
    assert gittree.changes_bytes(b"*.bin filter=lfs diff=lfs merge=lfs\n")
    assert not gittree.changes_bytes(b"*.js linguist-vendored\n*.png binary\n# text\n")
