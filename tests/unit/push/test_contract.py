"""Expand/contract at push time: the migrations new in a push that drop or rename, against the running
release (a warning) and the pushed code (a refusal)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.push.artifact import Artifact, FileEntry
from deploy.push.contract import ALLOW_FLAG, contract, rollback_warnings
from deploy.remote.facts import HostState

pytestmark = pytest.mark.unit

MODELS = """\
from app import db


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(200))
    nickname = db.Column(db.String(80))
"""
INIT = 'revision = "a1"\ndown_revision = None\n\n\ndef upgrade():\n    op.create_table("user")\n'
DROP = (
    'from alembic import op\n\nrevision = "b2"\ndown_revision = "a1"\n\n\ndef upgrade():\n'
    '    op.drop_column("user", "nickname")\n'
)


def artifact(files: dict[str, str]) -> Artifact:
    return Artifact("c0ffee", False, {p: FileEntry(t.encode()) for p, t in files.items()}, "requirements.txt")


def host(files: list[str] | None) -> dict[str, HostState]:
    """One host whose running release has `files` (None: no release yet)."""
    if files is None:
        return {"web1": HostState("web1")}
    links: dict[str, str | None] = {"current": "/srv/shop/releases/20261201-aaaa"}
    return {"web1": HostState("web1", links=links, manifest={f: ["x", "640"] for f in files})}


OLD = ["app.py", "models.py", "migrations/env.py", "migrations/versions/a1_init.py"]


def test_a_new_migration_that_drops_what_the_new_code_maps_is_refused() -> None:
    files = {
        "models.py": MODELS,
        "migrations/env.py": "",
        "migrations/versions/a1_init.py": INIT,
        "migrations/versions/b2_drop.py": DROP,
    }
    found = contract(artifact(files), host(OLD))
    [warning, advice] = found.warnings()
    assert warning.startswith(
        "warning: migrations/versions/b2_drop.py:8: op.drop_column drops column user.nickname, a migration "
        "new in this push; the running release (20261201-aaaa on web1)"
    )
    assert advice.startswith("expand/contract: ship the code that stops using")
    refusal = found.refusal()
    assert refusal is not None
    assert (
        "b2_drop.py:8: op.drop_column drops column user.nickname, but the new code still uses it: " in refusal
    )
    assert "User.nickname (models.py:7)" in refusal and ALLOW_FLAG in refusal


def test_a_contract_after_the_code_stopped_using_it_is_a_warning_only() -> None:
    files = {
        "models.py": MODELS.replace("    nickname = db.Column(db.String(80))\n", ""),
        "migrations/versions/a1_init.py": INIT,
        "migrations/versions/b2_drop.py": DROP,
    }
    found = contract(artifact(files), host(OLD))
    assert len(found.warnings()) == 2 and found.refusal() is None


def test_migrations_already_on_the_hosts_and_first_pushes_say_nothing() -> None:
    files = {
        "models.py": MODELS,
        "migrations/versions/a1_init.py": INIT,
        "migrations/versions/b2_drop.py": DROP,
    }
    shipped = contract(artifact(files), host([*OLD, "migrations/versions/b2_drop.py"]))
    assert shipped.warnings() == [] and shipped.refusal() is None
    first = contract(artifact(files), host(None))
    assert first.warnings() == [] and first.refusal() is None


def test_push_refuses_before_any_host_changes_unless_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    from deploy.cli.common import Printer
    from deploy.cli.push import _expand_contract

    files = {
        "models.py": MODELS,
        "migrations/versions/a1_init.py": INIT,
        "migrations/versions/b2_drop.py": DROP,
    }
    with pytest.raises(SystemExit) as stopped:
        _expand_contract(artifact(files), host(OLD), Printer(False), allowed=False)
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert "warning: migrations/versions/b2_drop.py:8" in out
    assert "nothing was changed: a migration of this push takes away what the pushed code still uses" in err
    _expand_contract(artifact(files), host(OLD), Printer(False), allowed=True)
    out, err = capsys.readouterr()
    assert "expand/contract" in out and err == ""


def test_a_rollback_to_code_that_maps_what_a_newer_migration_dropped_is_warned_about(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        env = {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
        }
        done = subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True, env=env
        )
        return done.stdout.strip()

    def commit(files: dict[str, str]) -> str:
        for rel, text in files.items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text, encoding="utf-8")
        git("add", "-A")
        git("commit", "-q", "-m", "x")
        return git("rev-parse", "HEAD")

    git("init", "-q")
    old = commit({"models.py": MODELS, "migrations/env.py": "", "migrations/versions/a1_init.py": INIT})
    new = commit(
        {
            "models.py": MODELS.replace("    nickname = db.Column(db.String(80))\n", ""),
            "migrations/versions/b2_drop.py": DROP,
        }
    )
    [warning] = rollback_warnings(tmp_path, ("rel-new", new), ("rel-old", old))
    assert warning == (
        "warning: rel-old's code maps column user.nickname (User.nickname, models.py:7), but "
        "migrations/versions/b2_drop.py:8 (op.drop_column, a migration of rel-new) drops it, and a rollback "
        "runs no downgrade: its requests that use it will fail; roll forward with a fix instead, or "
        "downgrade the database first"
    )
    assert rollback_warnings(tmp_path, ("rel-old", old), ("rel-new", new)) == []  # forward: nothing
    assert rollback_warnings(tmp_path, ("rel-new", new), ("gone", "0" * 40)) == []  # unknown commit
