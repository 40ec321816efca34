"""What the folders deploy.yaml names in a release may be: `app.static.dir` and `app.shared`.

Nginx serves every file under `app.static.dir` to anyone, without the app. A static folder must hold
public files only. By its name (no disk needed): not the project root, not the folder of the app's
code (the wsgi module's package), not Flask's instance folder, not a shared (persistent) path, not a
folder deploy or git keep their own files in, nor a parent of any of them. By its contents (on disk,
when the project's folder is known): no Python code, no database, no secrets, no deploy
configuration, and no link that leads out of it (Nginx follows links).

Every push replaces each `app.shared` entry in the new release by a link into shared/ (it removes the
release's own copy first). An entry inside another one is removed *through* the other's link, in
shared/ itself: the persistent data is lost. So entries are plain folder names, none inside another,
and none of them the release itself, deploy's or git's own files, the virtualenv or the app's code.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from deploy.config import secretfiles

#: Names in a release that are not the app's data, and whose they are.
RELEASE_OWN = {
    ".deploy": "deploy's own record of the release",
    ".deploy-files.tar": "deploy's own upload of the release",
    "gunicorn.conf.py": "deploy's own Gunicorn settings, rendered at every push",
    "deploy-out": "deploy's own rendered files",
    ".venv": "the virtualenv's link",
    "venv": "the virtualenv",
    ".git": "git's own folder",
    "__pycache__": "Python's bytecode cache",
}

#: Flask's instance folder (instance/config.py, the SQLite database) beside the app.
INSTANCE = "instance"

#: File names that are code, data or configuration, by what they would expose.
EXPOSED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code", ("*.py", "*.pyc", "*.pyo", "*.pyi", "*.so", "*.pyd")),
    (
        "data",
        (
            "*.db",
            "*.sqlite",
            "*.sqlite3",
            "*.db-*",
            "*.sqlite-*",
            "*.sqlite3-*",
            "*.sql",
            "*.sql.gz",
            "*.dump",
            "*.log",
        ),
    ),
    (
        "configuration",
        (
            "deploy.yaml",
            "deploy.yml",
            "deploy-check.yaml",
            "gunicorn.conf.py",
            "pyproject.toml",
            ".flaskenv",
            "*.ini",
            "*.cfg",
            ".git",
        ),
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
    module = wsgi.split(":", 1)[0]
    if not module:  # app.wsgi is missing or invalid (and reported as such)
        return ["."]
    parts = module.split(".")
    return ["."] + ["/".join(parts[: i + 1]) for i in range(len(parts))]


def static_by_name(static_dir: str, wsgi: str, shared: Iterable[str]) -> str | None:
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
    internal = sorted(set(RELEASE_OWN) & set(PurePosixPath(folder).parts))
    if internal:
        return f"is or is inside {internal[0]}, which is not the app's public files"
    return None


_LOST = "a push would delete the persistent data through the link"


def shared_by_name(entries: list[str], wsgi: str, requirements: str = "") -> list[tuple[int, str]]:
    """(index, why) for each entry of app.shared that cannot be a shared folder, by name alone."""
    problems: list[tuple[int, str]] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        folder = normalized(entry)
        parts = PurePosixPath(folder).parts
        own = next((RELEASE_OWN[p] for p in parts if p in RELEASE_OWN), None)
        code = next((c for c in code_folders(wsgi)[1:] if contains(folder, c)), None)
        if folder == ".":
            problems.append((index, f"{entry!r} is the release itself, not a folder in it"))
        elif folder == SHARED_FILES_DIR:
            problems.append((index, f"{entry!r} is where deploy keeps app.shared_files"))
        elif own is not None:
            problems.append((index, f"{entry!r} is {own}, not the app's data"))
        elif requirements and contains(folder, normalized(requirements)):
            problems.append(
                (index, f"{entry!r} holds app.requirements ({requirements}), which every push installs")
            )
        elif code is not None:
            problems.append(
                (
                    index,
                    f"{entry!r} holds the app's code ({code.replace('/', '.')}, from app.wsgi): "
                    "every release would run the shared copy instead of the pushed code",
                )
            )
        elif folder in seen:
            problems.append((index, f"{entry!r} and {seen[folder]!r} name the same folder: {_LOST}"))
        else:
            for other, first in seen.items():
                if contains(other, folder) or contains(folder, other):
                    inner, outer = (entry, first) if contains(other, folder) else (first, entry)
                    problems.append((index, f"{inner!r} is inside {outer!r}: {_LOST}"))
                    break
        seen.setdefault(folder, entry)
    return problems


def shared_by_contents(entries: list[str], project_dir: Path) -> list[tuple[int, str]]:
    """(index, why) for each entry of app.shared whose folder in the project holds Python code."""
    problems: list[tuple[int, str]] = []
    for index, entry in enumerate(entries):
        folder = project_dir / entry
        if folder.is_file():
            problems.append(
                (
                    index,
                    f"{entry!r} is a file in the project: app.shared lists folders (files: app.shared_files)",
                )
            )
            continue
        code = (
            next((p for p in sorted(folder.rglob("*")) if _kind(p.name) == "code"), None)
            if folder.is_dir()
            else None
        )
        if code is not None:
            shown = code.relative_to(project_dir).as_posix()
            problems.append(
                (
                    index,
                    f"{entry!r} holds code ({shown}): every release would run the shared copy "
                    "instead of the pushed code",
                )
            )
    return problems


#: Where app.shared_files live in shared/: a folder of their own, the app user's, so the app can create
#: files beside them (SQLite's journal goes beside the database the link resolves to).
SHARED_FILES_DIR = ".files"


def shared_files_by_name(
    files: list[str], shared: list[str], wsgi: str, requirements: str = ""
) -> list[tuple[int, str]]:
    """(index, why) for each entry of app.shared_files that cannot be a shared file, by name alone."""
    problems: list[tuple[int, str]] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(files):
        path = normalized(entry)
        parts = PurePosixPath(path).parts
        own = next((RELEASE_OWN[p] for p in parts if p in RELEASE_OWN), None)
        folder = next(
            (f for f in shared if contains(normalized(f), path) or contains(path, normalized(f))), None
        )
        if path == ".":
            problems.append((index, f"{entry!r} is the release itself, not a file in it"))
        elif own is not None:
            problems.append((index, f"{entry!r} is {own}, not the app's data"))
        elif requirements and path == normalized(requirements):
            problems.append((index, f"{entry!r} is app.requirements, which every push installs"))
        elif _kind(parts[-1]) == "code" or path in code_folders(wsgi)[1:]:
            problems.append(
                (
                    index,
                    f"{entry!r} is code: every release would run the shared copy instead of the pushed code",
                )
            )
        elif folder is not None:
            problems.append(
                (index, f"{entry!r} and the app.shared folder {folder!r} overlap: keep it in one of them")
            )
        elif path in seen:
            problems.append((index, f"{entry!r} and {seen[path]!r} name the same file"))
        elif any(contains(other, path) or contains(path, other) for other in seen):
            other = next(o for o in seen if contains(o, path) or contains(path, o))
            problems.append((index, f"{entry!r} and {seen[other]!r}: a file cannot hold another"))
        seen.setdefault(path, entry)
    return problems


def shared_files_by_contents(files: list[str], project_dir: Path) -> list[tuple[int, str]]:
    """(index, why) for each entry of app.shared_files that the project ships: a folder, or a file
    committed in git (every release would get the shared copy, and the committed one would never reach
    a host: a model or a default config would be replaced by an empty file)."""
    problems: list[tuple[int, str]] = []
    if not files:
        return problems
    try:
        listed = subprocess.run(
            ["git", "-C", str(project_dir), "ls-files", "-z", "--", *files],
            capture_output=True,
            check=False,
            timeout=30,
        )
        tracked = (
            set(listed.stdout.decode("utf-8", "replace").split("\0")) if listed.returncode == 0 else set()
        )
    except (OSError, subprocess.SubprocessError):
        tracked = set()
    for index, entry in enumerate(files):
        path = normalized(entry)
        if (project_dir / path).is_dir():
            problems.append((index, f"{entry!r} is a folder in the project: list it in app.shared"))
        elif path in tracked:
            problems.append(
                (
                    index,
                    f"{entry!r} is committed in the project: every release would use the shared copy "
                    "(empty at first) instead; remove it from git (git rm --cached) or do not share it",
                )
            )
    return problems


def _kind(name: str) -> str | None:
    # Case does not matter to a reader of the file: SETTINGS.PY and Shop.DB expose as much.
    for kind, patterns in EXPOSED:
        if any(fnmatch.fnmatchcase(name.lower(), pattern.lower()) for pattern in patterns):
            return kind
    # The one list of secret files that push, .dockerignore and the Dockerfile guard use.
    if secretfiles.is_secret_name(name) or secretfiles.is_secret_name(name.lower()):
        return "secrets"
    return None


def static_by_contents(static_dir: str, project_dir: Path) -> str | None:
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


#: Folders of the system: neither they nor any folder inside them holds an app's releases (setup
#: makes server.base_dir root's with mode 0755, and the app's folders in it).
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/efi",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/tmp",  # noqa: S108 - a folder refused, not a file made there
    "/usr",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
    "/var/tmp",  # noqa: S108 - a folder refused, not a file made there
    "/var/www/html",
)

#: Folders that hold other folders of their own (a user's home, other apps, mounted disks): a folder
#: inside them can be the app's, they themselves cannot.
SHARED_PARENTS = ("/", "/home", "/media", "/mnt", "/opt", "/srv", "/var", "/var/opt", "/var/www")


def host_folder_problem(path: str) -> str | None:
    """Why absolute `path` on a host cannot be a folder deploy owns and changes; None if it can."""
    folder = PurePosixPath("/" + path.strip("/"))
    text = folder.as_posix()
    tree = next((t for t in SYSTEM_TREES if folder.is_relative_to(t)), None)
    if tree is not None:
        return f"{text} is a system folder{'' if text == tree else f' (inside {tree})'}"
    if text in SHARED_PARENTS or (folder.parent.as_posix() == "/home"):
        return f"{text} is a system folder that holds other folders than the app's"
    hidden = next((p for p in folder.parts if p.startswith(".")), None)
    if hidden is not None:
        return f"{text} is inside a hidden folder ({hidden}), such as a user's .ssh"
    return None
