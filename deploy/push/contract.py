"""Expand/contract at push time: the Alembic migrations new in this push (in the artifact, not in the
running release's manifest) that drop or rename a column or table. The running release was written for
the schema before them, so each is a warning; one whose table or column the new code still maps is
refused unless the user allows it (`deploy push --allow-breaking-migrations`). Pure: the artifact and
the hosts' states in, findings out.

A rollback runs no downgrade: going back to a release whose models map what a migration of the live
release dropped breaks it; `rollback_warnings` says so, from the two commits in the local repository.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy.project.migrations import (
    Removal,
    Use,
    in_versions,
    parse_migrations,
    still_used,
    uses,
    version_dirs,
)
from deploy.project.scan import from_files
from deploy.push.artifact import Artifact
from deploy.remote.facts import HostState

#: The flag that lets a push run a migration the new code contradicts.
ALLOW_FLAG = "--allow-breaking-migrations"


@dataclass
class Contract:
    """What the migrations new in a push take away, and what of it the new code still uses."""

    #: The host and release that run now (None: no host has a release yet).
    running: tuple[str, str] | None = None
    removals: list[Removal] = field(default_factory=list)
    #: Removals the new code still uses, with those uses.
    contradicted: list[tuple[Removal, list[Use]]] = field(default_factory=list)

    def warnings(self) -> list[str]:
        if self.running is None:
            return []
        host, release = self.running
        out = []
        for r in self.removals:
            out.append(
                f"warning: {r.file}:{r.line}: {r.op} {r.verb}, a migration new in this push; the running "
                f"release ({release} on {host}) was written for the schema that has it, and keeps serving "
                f"until the switch: its requests that use the {r.kind} fail from the migration on"
            )
        if out:
            out.append(
                "expand/contract: ship the code that stops using a column or table first, and drop or "
                "rename it in a migration of a later release (deploy check: PIT010)"
            )
        return out

    def refusal(self) -> str | None:
        """Why the push is refused (the new code uses what its own migration takes away), or None."""
        if not self.contradicted:
            return None
        lines = [
            f"{r.file}:{r.line}: {r.op} {r.verb}, but the new code still uses it: "
            + ", ".join(f"{u.where} ({u.file}:{u.line})" for u in used[:3])
            for r, used in self.contradicted
        ]
        return (
            "a migration of this push takes away what the pushed code still uses:\n  "
            + "\n  ".join(lines)
            + f"\nfix the model or the migration; if you know better (the code no longer queries it), push "
            f"again with {ALLOW_FLAG}"
        )


def _running(states: Mapping[str, HostState]) -> tuple[str, str, dict[str, list[object]]] | None:
    for host, state in sorted(states.items()):
        if state.manifest is not None:
            return host, state.current or "the live release", state.manifest
    return None


def contract(artifact: Artifact, states: Mapping[str, HostState]) -> Contract:
    """The removals of the migrations this push adds, against the running release and the new code."""
    running = _running(states)
    if running is None:
        return Contract()
    host, release, manifest = running
    inis = {
        path: (artifact.read(path) or b"").decode("utf-8", "replace")
        for path in artifact.files
        if path.rsplit("/", 1)[-1] == "alembic.ini"
    }
    dirs = version_dirs(artifact.files, inis)
    if not dirs:
        return Contract((host, release))
    texts = {
        path: (artifact.read(path) or b"").decode("utf-8", "replace")
        for path in artifact.files
        if path.endswith(".py")
    }
    new = {path: text for path, text in texts.items() if in_versions(path, dirs) and path not in manifest}
    removals = [r for m in parse_migrations(new) for r in m.removals]
    out = Contract((host, release), removals)
    if removals:
        code = {path: text for path, text in texts.items() if not in_versions(path, dirs)}
        found = uses(from_files(Path("."), code).python)
        out.contradicted = [(r, used) for r in removals if (used := still_used(r, found))]
    return out


# --- rollback ---------------------------------------------------------------------------------------


def _git(project: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=project, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.decode("utf-8", "replace") if result.returncode == 0 else None


def _files(project: Path, commit: str) -> list[str] | None:
    listing = _git(project, "ls-tree", "-r", "--name-only", commit)
    return None if listing is None else listing.splitlines()


def _read(project: Path, commit: str, paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        text = _git(project, "show", f"{commit}:./{path}")
        if text is not None:
            out[path] = text
    return out


def rollback_warnings(project: Path, live: tuple[str, str], target: tuple[str, str]) -> list[str]:
    """Warnings for a rollback from `live` to `target` ((release, commit) each): the target's models
    map what a migration of the live release (not in the target) drops or renames. Nothing when the
    local repository lacks either commit."""
    (live_release, live_commit), (target_release, target_commit) = live, target
    now, then = _files(project, live_commit), _files(project, target_commit)
    if live_commit == target_commit or now is None or then is None:
        return []
    inis = _read(project, live_commit, [p for p in now if p.rsplit("/", 1)[-1] == "alembic.ini"])
    dirs = version_dirs(now, inis)
    older = set(then)
    removals = [
        r
        for m in parse_migrations(_read(project, live_commit, [p for p in now if in_versions(p, dirs)]))
        for r in m.removals
        if m.file not in older
    ]
    if not removals:
        return []
    code = _read(project, target_commit, [p for p in then if p.endswith(".py") and not in_versions(p, dirs)])
    found = uses(from_files(Path("."), code).python)
    out = []
    for r in removals:
        used = still_used(r, found)
        if used:
            out.append(
                f"warning: {target_release}'s code maps {r.what} ({used[0].where}, {used[0].file}:"
                f"{used[0].line}), but {r.file}:{r.line} ({r.op}, a migration of {live_release}) "
                f"{r.verb.split(' ', 1)[0]} it, and a rollback runs no downgrade: its requests that "
                "use it will fail; roll forward with a fix instead, or downgrade the database first"
            )
    return out
