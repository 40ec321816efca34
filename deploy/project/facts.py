"""The records the scan yields: settings, calls, SQL and template builds, write paths, secret literals."""

from __future__ import annotations

import posixpath
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploy.project.source import (
    Route,
)
from deploy.project.values import Value

_NON_PRODUCTION_SCOPE = re.compile(r"(?i)(dev|test|local|debug)")


# --- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A Flask config key given a value in the source (`app.config[...]`, `from_mapping`, a config class)."""

    key: str
    value: Value
    file: str
    line: int
    #: The config class it sits in ('' when set on the app directly).
    scope: str = ""
    #: The value, or its fallback, names an SQLite database (`"sqlite:///" + basedir + "/app.db"`).
    sqlite: bool = False

    @property
    def production(self) -> bool:
        """False for keys set in a config class meant for development or tests."""
        return not (self.scope and _NON_PRODUCTION_SCOPE.search(self.scope))


@dataclass(frozen=True)
class CallSite:
    """A call in the source: its dotted name (`sentry_sdk.init`, `CSRFProtect`), file, line, keywords."""

    name: str
    file: str
    line: int
    keywords: dict[str, Value]
    args: tuple[Value, ...]
    #: True inside `if __name__ == "__main__":`.
    main_guarded: bool = False
    function: str = ""

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SqlBuild:
    """A SQL statement built from strings and passed to execute()."""

    file: str
    line: int
    how: str


@dataclass(frozen=True)
class TemplateBuild:
    """A Jinja template compiled from a string that carries request data (server-side template injection)."""

    file: str
    line: int
    #: The call that compiles it (`render_template_string`, `from_string`, `Template`).
    call: str
    #: Where the request data comes from (`request.args`) and how it got into the template.
    source: str
    how: str


@dataclass(frozen=True)
class WritePath:
    """A place on disk the app writes to (a folder it creates, a log file, an SQLite file, uploads)."""

    file: str
    line: int
    #: What writes there: `os.mkdir()`, `RotatingFileHandler()`, `SQLALCHEMY_DATABASE_URI`, ...
    what: str
    #: The path as written, relative to the project (`logs/app.log`) or absolute (`/var/log/app`).
    path: str
    #: "absolute"; "relative" (to the working directory, the release); "project" (joined to a folder
    #: of the project such as `basedir`; which folder is not known); "instance" (app.instance_path).
    base: str
    #: True for config keys set in a development or test config class.
    production: bool = True


#: What writes a database file (WritePath.what): a file, never a folder.
DATABASE_WRITERS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI", "sqlite3.connect()")


def write_is_log(w: WritePath) -> bool:
    """A logging file handler or a LOG_FILE/LOG_DIR/... config key."""
    return w.what.endswith("Handler()") or bool(re.search(r"(^|_)LOG_(FILE|DIR|FOLDER|PATH)$", w.what))


def written_folder(w: WritePath) -> str | None:
    """The project folder a relative write lands in (what app.shared must list), or None: a single file
    at the root (app.shared_files), or an absolute path. A database or a log file is a file: its folder;
    anything else (os.makedirs(), UPLOAD_FOLDER, WHOOSHEE_DIR) is the folder itself. Joined to a folder
    that cannot be resolved ("project"), only the first part is known, by name."""
    if w.base == "absolute":
        return None
    parts = w.path.strip("/").split("/")
    is_file = w.what in DATABASE_WRITERS or (
        write_is_log(w)
        and not w.what.endswith(("_DIR", "_FOLDER"))
        and (w.what.endswith(("Handler()", "_FILE")) or "." in parts[-1])
    )
    if w.base == "instance":
        return "instance"
    if w.base == "project":
        return parts[0] if len(parts) > 1 or not is_file else None
    return "/".join(parts[:-1] if is_file else parts) or None


_PLACEHOLDERS = frozenset({".gitkeep", ".keep", ".gitignore", ".placeholder", ".empty"})


def committed_files(root: Path, folder: str) -> list[str]:
    """The files git tracks under `folder` of the project at `root` (placeholders such as .gitkeep left
    out); without git, the files on disk."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", folder],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode("utf-8", "replace")
        files = [f for f in listed.split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        base = root / folder
        files = (
            sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())
            if base.is_dir()
            else []
        )
    return sorted(f for f in files if posixpath.basename(f) not in _PLACEHOLDERS)


@dataclass(frozen=True)
class Literal_:
    """A string literal bound to a name that looks like a credential."""

    name: str
    file: str
    line: int
    scope: str
    #: The value is lower-case words only (`invalid_credentials`, `target=watch-files`): a label when the
    #: author marked the line `# nosec`, since nothing in it looks generated or chosen as a password.
    word_shaped: bool = False


# --- what one pass over a module collects (deploy.project.visitor) ----------------------------------


@dataclass
class _Facts:
    settings: list[Setting] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    sql: list[SqlBuild] = field(default_factory=list)
    templates: list[TemplateBuild] = field(default_factory=list)
    writes: list[WritePath] = field(default_factory=list)
    secrets: list[Literal_] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    form_classes: set[str] = field(default_factory=set)
    #: The project's subclasses of Flask (`class CTFdFlask(Flask)`): calling one builds the app.
    flask_classes: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    headers: list[tuple[str, str, int]] = field(default_factory=list)
    pool_classes: list[tuple[str, str, int]] = field(default_factory=list)
    #: Functions (not views) that read the request and check what they read (`_add_dataset()`), and
    #: those that check the parameters they are given (`_handle_new_user(form_data)`).
    checking: set[str] = field(default_factory=set)
    checking_parameters: set[str] = field(default_factory=set)
