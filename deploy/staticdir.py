"""What `app.static.dir` would expose: Nginx serves every file under it to anyone, without the app.

A static folder must hold public files only. By its name (no disk needed): not the project root, not
the folder of the app's code (the wsgi module's package), not Flask's instance folder, not a shared
(persistent) path, not a folder deploy or git keep their own files in, nor a parent of any of them. By
its contents (on disk, when the project's folder is known): no Python code, no database, no secrets,
no deploy configuration, and no link that leads out of it (Nginx follows links).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

#: Folders a release holds that are not the app's public files: deploy's own, git's, virtualenvs.
INTERNAL_NAMES = frozenset({".deploy", ".git", ".venv", "venv", "deploy-out", "__pycache__"})

#: Flask's instance folder (instance/config.py, the SQLite database) beside the app.
INSTANCE = "instance"

#: File names that are code, data or configuration, by what they would expose.
EXPOSED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code", ("*.py", "*.pyc", "*.pyo", "*.pyi", "*.so", "*.pyd")),
    ("data", ("*.db", "*.sqlite", "*.sqlite3", "*.db-journal", "*.db-wal", "*.sqlite-wal", "*.sqlite3-wal")),
    (
        "configuration",
        ("deploy.yaml", "deploy.yml", "deploy-check.yaml", "gunicorn.conf.py", "pyproject.toml", ".git"),
    ),
)


def normalized(path: str) -> str:
    """A relative path as a folder name: 'a//b/', './a' and 'a/./b' name 'a' and 'a/b'."""
    return PurePosixPath(path).as_posix()


def contains(parent: str, child: str) -> bool:
    """Whether relative folder `child` is `parent` or inside it ('.' contains everything)."""
    p, c = PurePosixPath(parent).parts, PurePosixPath(child).parts
    return c[: len(p)] == p


def code_folders(wsgi: str) -> list[str]:
    """The folders that hold the wsgi module's code: 'shop.web:app' -> ['.', 'shop', 'shop/web']."""
    parts = wsgi.split(":", 1)[0].split(".")
    return ["."] + ["/".join(parts[: i + 1]) for i in range(len(parts))]


def by_name(static_dir: str, wsgi: str, shared: Iterable[str]) -> str | None:
    """Why `static_dir` cannot be the static folder, judged by its name alone; None if it can."""
    folder = normalized(static_dir)
    if folder == ".":
        return "is the project root: Nginx would serve the source code, .env and the database"
    for code in code_folders(wsgi):
        if code != "." and contains(folder, code):
            return (
                f"holds the app's code ({code.replace('/', '.')}, from app.wsgi): Nginx would serve "
                "the source code"
            )
    if contains(folder, INSTANCE) or contains(INSTANCE, folder):
        return "overlaps Flask's instance folder: Nginx would serve instance/config.py and the database"
    for entry in shared:
        if contains(folder, normalized(entry)) or contains(normalized(entry), folder):
            return (
                f"overlaps the shared path {entry!r} (app.shared): Nginx would serve the app's "
                "persistent data"
            )
    internal = sorted(INTERNAL_NAMES & set(PurePosixPath(folder).parts))
    if internal:
        return f"is or is inside {internal[0]}, which is not the app's public files"
    return None


def _kind(name: str) -> str | None:
    from deploy.render import DOCKER_SECRET_NAMES

    for kind, patterns in (*EXPOSED, ("secrets", DOCKER_SECRET_NAMES)):
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            return kind
    return None


def by_contents(static_dir: str, project_dir: Path) -> str | None:
    """Why the folder `static_dir` of the project at `project_dir` cannot be served: the first file in
    it that is code, data, configuration or a secret, or a link out of it; None if there is none (or
    the folder does not exist yet)."""
    root = project_dir.resolve()
    folder = project_dir / static_dir
    if not folder.exists() and not folder.is_symlink():
        return None
    real = folder.resolve()
    if real == root or not real.is_relative_to(root):
        where = "the project root" if real == root else "outside the project"
        return f"leads to {where} ({real}): Nginx follows links"
    for top, dirs, files in os.walk(real):
        for name in sorted(dirs + files):
            path = Path(top) / name
            shown = f"{static_dir.rstrip('/')}/{path.relative_to(real).as_posix()}"
            kind = _kind(name)
            if kind is not None:
                return f"holds {shown}: Nginx would serve {kind} to anyone"
            if path.is_symlink() and not path.resolve().is_relative_to(real):
                return f"holds {shown}, a link out of the folder: Nginx follows links"
        dirs[:] = [d for d in dirs if not (Path(top) / d).is_symlink()]
    return None
