"""Where the app writes: folder expressions resolved to the project's folders, and SQLite files."""

from __future__ import annotations

import ast
import itertools
import posixpath
import re
from collections.abc import Callable
from contextvars import ContextVar

from deploy.project.source import (
    PythonFile,
    _dotted,
)
from deploy.project.values import _env_read

#: Calls that create a folder or open a file for writing: {dotted name or leaf: what it is}.
_WRITING_CALLS = {
    "os.mkdir": "os.mkdir()",
    "os.makedirs": "os.makedirs()",
    "makedirs": "os.makedirs()",
    "FileHandler": "logging.FileHandler()",
    "RotatingFileHandler": "RotatingFileHandler()",
    "TimedRotatingFileHandler": "TimedRotatingFileHandler()",
    "WatchedFileHandler": "WatchedFileHandler()",
    "sqlite3.connect": "sqlite3.connect()",
}
#: Config keys naming a folder the app writes into (uploads, logs, caches, search indexes).
_WRITE_KEYS = re.compile(
    r"^(\w*UPLOAD\w*_(FOLDER|PATH|DIR|DEST|ROOT)|UPLOADED_\w+_DEST|\w*LOG_(FILE|DIR|FOLDER|PATH)"
    r"|\w*(CACHE|WHOOSH\w*)_(DIR|DIRECTORY|FOLDER|PATH|ROOT))$"
)
_DB_KEYS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI")
_BASE_HINTS = re.compile(r"(?i)(__file__|dir|base|root|path|here|folder)")


def _path_of(node: ast.AST, depth: int = 0) -> tuple[str, str] | None:
    """(path, base) of an expression naming a file or folder, as far as the source tells; None if unknown."""
    if depth > 8:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        if not text or "://" in text or text.startswith((":", "~", "$")):
            return None
        return (text, "absolute") if text.startswith("/") else (text.removeprefix("./"), "relative")
    env = _env_read(node)
    if env is not None:
        return _path_of(ast.Constant(env[2]), depth + 1) if env[1] and isinstance(env[2], str) else None
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _path_of(node.values[-1], depth + 1)
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) in ("os.path.join", "path.join", "join")
        and node.args
    ):
        resolved = _resolved_folder(node)  # `join(dirname(__file__), os.pardir, ".data")`
        if resolved is not None:
            return resolved
        tail = [a.value for a in node.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(tail) != len(node.args) - 1:
            # `join(basedir, "whoosh_index", version)`: the path lies in the folder its constant parts name.
            known = list(itertools.takewhile(lambda a: isinstance(a, ast.Constant), node.args[1:]))
            if not known or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in known):
                return None
            return _path_of(ast.Call(node.func, [node.args[0], *known], []), depth + 1)
        head = node.args[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            found = _path_of(ast.Constant("/".join([head.value, *tail])), depth + 1)
            return found
        return _based(head, "/".join(tail))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        right = node.right
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            left = _path_of(node.left, depth + 1)
            if left is not None:
                return f"{left[0].rstrip('/')}/{right.value}", left[1]
            return _based(node.left, right.value)
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) in ("Path", "pathlib.Path", "PurePath", "str", "os.fspath")
        and len(node.args) == 1
    ):
        return _path_of(node.args[0], depth + 1)
    if isinstance(node, ast.Attribute) and node.attr == "instance_path":
        return "instance", "relative"  # Flask's default: the folder `instance` beside the app's package
    folder_of = _FOLDER_OF.get()
    folder = folder_of(node) if folder_of is not None and isinstance(node, ast.Name | ast.Attribute) else None
    if folder == TEMP_FOLDER:
        return None
    if folder:
        return folder, "relative"
    return None


#: How the module being scanned resolves a folder expression to a folder of the project (see
#: `folder_resolver`); set around each module's walk.
_FOLDER_OF: ContextVar[Callable[[ast.AST], str | None] | None] = ContextVar("_FOLDER_OF", default=None)


#: What `folder_resolver` gives for a folder made by `tempfile` (private /tmp under the unit).
TEMP_FOLDER = "\0tmp"


def app_root_path(modules: list[PythonFile]) -> str | None:
    """The project folder Flask's `app.root_path` is: the folder of the module that calls `Flask(...)`."""
    for module in modules:
        if module.tree is None or "Flask(" not in module.text:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _dotted(node.func) in ("Flask", "flask.Flask", "APIFlask"):
                return posixpath.dirname(module.path)
    return None


def _norm_folder(path: str) -> str | None:
    """A relative folder normalised ('' for the root), None when it leaves the project."""
    joined = posixpath.normpath(path) if path else "."
    if joined == ".." or joined.startswith("../"):
        return None
    return "" if joined == "." else joined


def _path_part(node: ast.AST) -> str | None:
    """A relative path piece an expression spells (a string, `os.pardir`, `os.curdir`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.startswith("/"):
        return node.value
    if _dotted(node) in ("os.pardir", "pardir"):
        return ".."
    if _dotted(node) in ("os.curdir", "curdir"):
        return "."
    return None


def _bindings(tree: ast.Module) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) of every single assignment and `with ... as` in a module, in source order."""
    found: list[tuple[int, ast.AST, ast.AST]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and len(n.targets) == 1:
            found.append((n.lineno, n.targets[0], n.value))
        elif isinstance(n, ast.With | ast.AsyncWith):
            found.extend((n.lineno, i.optional_vars, i.context_expr) for i in n.items if i.optional_vars)
    return [(target, value) for _line, target, value in sorted(found, key=lambda b: b[0])]


def folder_resolver(module: PythonFile, root_path: str | None) -> Callable[[ast.AST], str | None]:
    """A function giving the project folder (relative, '' for the root) an expression names, as far as
    the source tells: `__file__`, `os.path.dirname()`, `abspath()`, `Path(...).parent`, `.resolve()`,
    `os.path.join()`, `/`, `app.root_path`, and names assigned such an expression in this module."""
    names: dict[str, str] = {}
    if not any(word in module.text for word in ("__file__", "root_path", "tempfile", "cwd")):
        return lambda node: None  # nothing in this module can name a folder of the project
    own = app_root_path([module])
    if own is not None:
        root_path = own

    def resolve(node: ast.AST, depth: int = 0) -> str | None:
        if depth > 12:
            return None
        if isinstance(node, ast.Name):
            return module.path if node.id == "__file__" else names.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr == "root_path":
                return root_path
            if node.attr == "parent":
                inner = resolve(node.value, depth + 1)
                if inner is None or inner == TEMP_FOLDER:
                    return inner
                return _norm_folder(posixpath.dirname(inner))
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = resolve(node.left, depth + 1), _path_part(node.right)
            if left == TEMP_FOLDER:
                return left
            if left is None or right is None:
                return None
            return _norm_folder(posixpath.join(left, right))
        if not isinstance(node, ast.Call):
            return None
        name = _dotted(node.func)
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(node.func, ast.Attribute) and leaf in ("resolve", "absolute") and not node.args:
            return resolve(node.func.value, depth + 1)
        if name in ("os.getcwd", "getcwd", "Path.cwd", "pathlib.Path.cwd"):
            return ""  # the service's working directory: the release
        if not node.args:
            return None
        first = resolve(node.args[0], depth + 1)
        if first is None or first == TEMP_FOLDER:
            return first
        if leaf == "dirname":
            return _norm_folder(posixpath.dirname(first))
        if leaf in ("abspath", "realpath", "normpath", "fspath") or name in ("Path", "pathlib.Path", "str"):
            return first
        if leaf == "join":
            rest = [_path_part(a) for a in node.args[1:]]
            if any(r is None for r in rest):
                return None
            return _norm_folder(posixpath.join(first, *[r for r in rest if r is not None]))
        return None

    if module.tree is not None:
        for target, value in _bindings(module.tree):
            if not isinstance(target, ast.Name):
                continue
            if isinstance(value, ast.Call) and _dotted(value.func).startswith("tempfile."):
                names[target.id] = TEMP_FOLDER
                continue
            found = resolve(value)
            if found is not None:
                names[target.id] = found
    return resolve


def _resolved_folder(node: ast.AST) -> tuple[str, str] | None:
    """(folder, "relative") of an expression the module's folder resolver places inside the project."""
    folder_of = _FOLDER_OF.get()
    folder = folder_of(node) if folder_of is not None else None
    if folder is None or folder == TEMP_FOLDER or folder == "":
        return None
    return folder, "relative"


def _based(head: ast.AST, tail: str) -> tuple[str, str] | None:
    """`tail` joined to a folder given by an expression (`basedir`, `app.instance_path`)."""
    name = _dotted(head) or ast.unparse(head)
    if name.endswith("instance_path"):
        return tail, "instance"
    folder_of = _FOLDER_OF.get()
    folder = folder_of(head) if folder_of is not None else None
    if folder == TEMP_FOLDER:
        return f"/tmp/{tail}", "absolute"  # noqa: S108 - a path compared, never used
    if folder is not None:
        joined = posixpath.normpath(posixpath.join(folder, tail))
        if joined != ".." and not joined.startswith("../"):
            return joined.removeprefix("./"), "relative"
    if _BASE_HINTS.search(name):
        return tail, "project"
    return None


def _sqlite_chain(node: ast.BinOp) -> tuple[str, str] | None:
    """The file of `"sqlite:///" + basedir + "/app.db"` (a longer `+` chain), when each piece is a
    string or a folder of the project the resolver knows."""
    operands: list[ast.AST] = []
    current: ast.AST = node
    while isinstance(current, ast.BinOp) and isinstance(current.op, ast.Add):
        operands.insert(0, current.right)
        current = current.left
    operands.insert(0, current)
    first = operands[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    match = re.match(r"^sqlite(\+\w+)?:///(.*)$", first.value.strip(), re.I)
    if match is None:
        return None
    folder_of = _FOLDER_OF.get()
    root = "\0root"
    pieces = [match.group(2)]
    for operand in operands[1:]:
        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
            pieces.append(operand.value)
            continue
        folder = folder_of(operand) if folder_of is not None else None
        if folder is None or folder == TEMP_FOLDER:
            return None
        pieces.append(f"{root}/{folder}")
    text = "".join(pieces).split("?", 1)[0]
    if root in text:
        relative = posixpath.normpath(text.rsplit(root, 1)[1].lstrip("/") or ".")
        return None if relative.startswith("..") or relative == "." else (relative, "relative")
    return (text, "absolute") if text.startswith("/") else (text, "relative")


def _sqlite_path(node: ast.AST) -> tuple[str, str] | None:
    """(path, base) of the file an SQLite URL names (`sqlite:///app.db`, `'sqlite:///' + join(...)`)."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _sqlite_path(node.values[-1])
    env = _env_read(node)
    if env is not None:
        return _sqlite_path(ast.Constant(env[2])) if env[1] and isinstance(env[2], str) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        match = re.match(r"^sqlite(\+\w+)?:///(.*)$", node.value.strip(), re.I)
        if not match or match.group(2) in ("", ":memory:") or match.group(2).startswith("file::memory"):
            return None
        rest = match.group(2).split("?", 1)[0]
        return (rest, "absolute") if rest.startswith("/") else (rest, "relative")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.BinOp):
        return _sqlite_chain(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = node.left
        if (
            isinstance(left, ast.Constant)
            and isinstance(left.value, str)
            and left.value.lower().startswith("sqlite")
        ):
            if re.match(r"^sqlite(\+\w+)?:////", left.value, re.I):
                return _path_of(ast.Constant("/" + left.value.split("////", 1)[1]))
            return _path_of(node.right)
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and str(first.value).lower().startswith("sqlite"):
            tail = node.values[-1]
            if isinstance(tail, ast.Constant) and isinstance(tail.value, str) and len(node.values) > 1:
                middle = node.values[1]
                if (
                    len(node.values) == 3
                    and isinstance(middle, ast.FormattedValue)
                    and str(first.value).lower().endswith(":///")
                ):
                    # f"sqlite:///{os.path.dirname(__file__)}/app.db": the file in that folder
                    folder = _resolved_folder(middle.value)
                    if folder is not None:
                        return posixpath.join(folder[0], tail.value.strip("/")), "relative"
                return tail.value.strip("/"), "project"
    return None


#: Config keys that name a database file or URL (besides the URL keys of `_DB_KEYS`).
SQLITE_FILE_KEYS = ("DATABASE", "DATABASE_PATH", "DATABASE_FILE", "SQLITE_PATH", "SQLITE_DB", "SQLITE_FILE")
_SQLITE_SUFFIX = re.compile(r"(?i)\.(db|sqlite|sqlite3|db3)$")


def _leftmost_string(node: ast.AST, depth: int = 0) -> str | None:
    """The constant a string expression starts with (`"sqlite:///" + a + b`, f-strings, `.format`, `%`)."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _leftmost_string(node.left, depth + 1)
    if isinstance(node, ast.JoinedStr) and node.values:
        return _leftmost_string(node.values[0], depth + 1)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _leftmost_string(node.func.value, depth + 1)
    return None


def names_sqlite(key: str, node: ast.AST, depth: int = 0) -> bool:
    """Whether the value of config `key` (or its fallback when an environment variable is unset) is an
    SQLite database: an `sqlite:` URL however it is assembled, or a `DATABASE`-style key naming a
    `.db`/`.sqlite` file."""
    if depth > 8:
        return False
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return any(names_sqlite(key, v, depth + 1) for v in node.values[1:])
    if isinstance(node, ast.IfExp):
        return names_sqlite(key, node.body, depth + 1) or names_sqlite(key, node.orelse, depth + 1)
    if _env_read(node) is not None:
        fallback = node.args[1] if isinstance(node, ast.Call) and len(node.args) > 1 else None
        return fallback is not None and names_sqlite(key, fallback, depth + 1)
    start = _leftmost_string(node)
    if start is not None and re.match(r"(?i)^sqlite(\+\w+)?:", start.strip()):
        return True
    if key in SQLITE_FILE_KEYS or "SQLITE" in key:
        found = _path_of(node)
        return found is not None and (bool(_SQLITE_SUFFIX.search(found[0])) or "SQLITE" in key)
    return False


def sqlite_engines(modules: list[PythonFile]) -> list[tuple[str, int]]:
    """(file, line) of every SQLAlchemy `create_engine()` given an SQLite file URL (not `sqlite://`,
    the in-memory database)."""
    out: list[tuple[str, int]] = []
    for module in modules:
        if module.tree is None or "create_" not in module.text:
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Call)
                and node.args
                and _dotted(node.func).rsplit(".", 1)[-1] in ("create_engine", "create_async_engine")
                and names_sqlite("SQLALCHEMY_DATABASE_URI", node.args[0])
                and not (
                    isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).strip() in ("sqlite://", "sqlite:///:memory:")
                )
            ):
                out.append((module.path, node.lineno))
    return sorted(out)
