"""Evidence the static checks weigh before they report (issue 16): what production really runs.

- `served_modules`: the modules the served entry point imports, transitively within the project, so a
  developer script production never imports cannot raise a "development server" finding;
- `csrf_enforcement`: how the app enforces CSRF for every request, if it does (Flask-WTF `CSRFProtect`,
  Flask-SeaSurf, a `before_request` handler that checks a token or header and aborts);
- `uses_session`: whether anything in the app keeps state in Flask's session cookie.

Pure functions of a scanned `Project`; nothing here imports or runs the user's code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from deploy.project.scan import CallSite, Project
from deploy.project.source import PythonFile

T = TypeVar("T")
_MEMO: dict[tuple[str, int], tuple[Project, object]] = {}


def _per_project(function: Callable[[Project], T]) -> Callable[[Project], T]:
    """Compute a fact once per scanned project (several checks ask for it)."""

    def wrapper(project: Project) -> T:
        key = (function.__name__, id(project))
        hit = _MEMO.get(key)
        if hit is not None and hit[0] is project:
            return hit[1]  # type: ignore[return-value]
        if len(_MEMO) > 32:
            _MEMO.clear()
        value = function(project)
        _MEMO[key] = (project, value)
        return value

    wrapper.__doc__ = function.__doc__
    return wrapper


# --- modules production imports --------------------------------------------------------------------


def module_name(path: str) -> str:
    """`pkg/sub/mod.py` -> `pkg.sub.mod`; `pkg/__init__.py` -> `pkg`."""
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


class _Index:
    """Resolves dotted import names to the project's modules (also below a wrapper folder or `src/`)."""

    def __init__(self, project: Project) -> None:
        self.modules = {m.path: m for m in project.python if m.tree is not None}
        self.by_name: dict[str, list[str]] = {}
        packages = {m.path.rpartition("/")[0] for m in project.python if m.path.endswith("/__init__.py")}
        for path in self.modules:
            parts = module_name(path).split(".")
            folders = path.split("/")[:-1]
            for start in range(len(parts)):
                # A name may start below a wrapper folder (src/), never inside a package: `auth` is not
                # `pkg/cli/auth.py` when pkg/ and pkg/cli/ are packages (only `pkg.cli.auth` is).
                if start and "/".join(folders[:start]) in packages:
                    continue
                self.by_name.setdefault(".".join(parts[start:]), []).append(path)

    def resolve(self, name: str) -> list[str]:
        """The modules `import name` loads: the module and the packages above it."""
        out: list[str] = []
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            out.extend(self.by_name.get(".".join(parts[:end]), []))
        return out


def _imported_names(module: PythonFile) -> Iterator[str]:
    """Dotted names a module imports (relative imports resolved), and dotted strings it names
    (`app.config.from_object("pkg.settings.Production")`)."""
    assert module.tree is not None
    package = module_name(module.path).split(".")
    if not module.path.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*up, *([base] if base else [])])
            if base:
                yield base
            for alias in node.names:
                yield f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            if re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", text):
                yield text
            elif re.fullmatch(r"[\w./-]+\.py", text):
                yield module_name(text.rsplit("/", 1)[-1])


def served_modules(project: Project, roots: Iterable[str]) -> set[str]:
    """Paths of every project module that importing the `roots` (dotted names) loads, transitively."""
    index = _Index(project)
    seen: set[str] = set()
    todo = [path for name in roots for path in index.resolve(name)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(index.modules[path]):
            todo.extend(p for p in index.resolve(name) if p not in seen)
    return seen


_SERVER_TARGET = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_]\w*")


def server_targets(commands: Iterable[str]) -> list[str]:
    """Modules the commands that start the app load: a WSGI server's target (`gunicorn -w 3
    'pkg.wsgi:app'` -> `pkg.wsgi`), or the script or module Python runs (`python manage.py`, `-m pkg`)."""
    out: list[str] = []
    for command in commands:
        words = command.replace('"', " ").replace("'", " ").split()
        if words and words[0].rsplit("/", 1)[-1].startswith("python"):
            rest = words[1:]
            if "-m" in rest and rest.index("-m") + 1 < len(rest):
                out.append(rest[rest.index("-m") + 1])
            out.extend(module_name(w.removeprefix("./")) for w in rest if w.endswith(".py"))
            continue
        if not any(w.rsplit("/", 1)[-1] in ("gunicorn", "uwsgi", "waitress-serve", "uvicorn") for w in words):
            continue
        for word in words:
            match = _SERVER_TARGET.match(word.removeprefix("--module=").removeprefix("--app="))
            if match:
                out.append(match.group(1))
    return out


def runs_in_production(project: Project, call: CallSite, served: set[str] | None) -> bool:
    """Whether production reaches `call`: its module is served, and it runs at import time or in a
    function that served code calls (outside `if __name__ == "__main__":`) or that builds the app."""
    if call.main_guarded:
        return False
    if served is None:
        return True
    if call.file not in served:
        return False
    if not call.function or call.function in ("create_app", "make_app"):
        return True
    return any(
        c.leaf == call.function and c.file in served and not c.main_guarded and c.function != call.function
        for c in project.calls
    )


# --- CSRF enforced for every request ---------------------------------------------------------------

_CSRF_EXTENSIONS = ("CSRFProtect", "SeaSurf", "CsrfProtect")
#: What a hand-written CSRF guard compares: a token or nonce, or the browser's fetch metadata / origin.
_CSRF_EVIDENCE = re.compile(r"(?i)(csrf|xsrf|nonce|token|sec-fetch-site|^origin$|^referer$|x-requested-with)")
#: A cookie alone proves nothing (the browser sends it on cross-site requests too).
_REQUEST_PARTS = {"form", "headers", "values", "json", "get_json", "args", "environ"}
_CSRF_NAME = re.compile(r"(?i)(csrf|xsrf|nonce)")


def _before_request_handlers(module: PythonFile) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    assert module.tree is not None
    registered: set[str] = set()
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("before_request", "before_app_request")
        ):
            registered.update(a.id for a in node.args if isinstance(a, ast.Name))
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorated = any(
            isinstance(d, ast.Attribute) and d.attr in ("before_request", "before_app_request")
            for d in node.decorator_list
        )
        if decorated or node.name in registered:
            yield node


def _rejects(node: ast.AST) -> bool:
    """The handler can stop the request: abort(), a raise, or returning a response early."""
    for child in ast.walk(node):
        if isinstance(child, ast.Raise):
            return True
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name | ast.Attribute):
            name = child.func.id if isinstance(child.func, ast.Name) else child.func.attr
            if name == "abort":
                return True
        if isinstance(child, ast.Return) and child.value is not None:
            return True
    return False


def _checks_token(node: ast.AST) -> bool:
    """The handler reads the request and looks at a token, nonce or fetch-metadata header."""
    reads = any(
        isinstance(c, ast.Attribute)
        and c.attr in _REQUEST_PARTS
        and isinstance(c.value, ast.Name)
        and c.value.id == "request"
        for c in ast.walk(node)
    )
    named = any(
        isinstance(c, ast.Constant) and isinstance(c.value, str) and _CSRF_EVIDENCE.search(c.value.strip())
        for c in ast.walk(node)
    ) or any(
        isinstance(c, ast.Name | ast.Attribute)
        and _CSRF_NAME.search(c.id if isinstance(c, ast.Name) else c.attr)
        for c in ast.walk(node)
    )
    return reads and named


@_per_project
def csrf_enforcement(project: Project) -> tuple[str, str, int] | None:
    """(how, file, line) of the protection that covers every request, or None."""
    extensions: set[str] = set()
    for module in project.python:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and (_leaf(node.value.func) in _CSRF_EXTENSIONS)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name | ast.Attribute):
                        extensions.add(target.id if isinstance(target, ast.Name) else target.attr)
    for call in project.calls:
        if call.leaf in _CSRF_EXTENSIONS and call.args:
            return f"{call.leaf}(app)", call.file, call.line
        owner = call.name.rsplit(".", 1)[0].rsplit(".", 1)[-1] if "." in call.name else ""
        if call.leaf == "init_app" and (owner in extensions or "csrf" in owner.lower()) and call.args:
            return f"{owner}.init_app(app)", call.file, call.line
    for module in project.python:
        if module.tree is None:
            continue
        for handler in _before_request_handlers(module):
            if _checks_token(handler) and _rejects(handler):
                return f"the before_request handler {handler.name}()", module.path, handler.lineno
    return None


def _leaf(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


# --- the session -------------------------------------------------------------------------------------

#: Extensions that keep state in Flask's session (logins, CSRF tokens, OAuth state, server-side sessions).
_SESSION_EXTENSIONS = (
    "flask_login",
    "flask_session",
    "flask_wtf",
    "flask_security",
    "flask_dance",
    "flask_principal",
    "flask_openid",
    "flask_oauthlib",
    "flask_kvsession",
    "flask_user",
    "flask_admin",
    "authlib.integrations.flask_client",
)
_TEMPLATE_SESSION = re.compile(r"\{[{%][^}]*\b(session\s*[.\[]|get_flashed_messages)")


@_per_project
def uses_session(project: Project) -> bool:
    """Whether the app reads or writes Flask's session (directly, through flash(), or an extension)."""
    if project.uses(*_SESSION_EXTENSIONS):
        return True
    if {"flask.session", "flask.flash"} & project.imports:
        return True
    for module in project.python:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and (
                node.attr == "session_interface"
                or (
                    node.attr in ("session", "flash")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "flask"
                )
            ):
                return True
    return any(
        _TEMPLATE_SESSION.search(text)
        for _, text in project.glob(".html", ".htm", ".jinja", ".jinja2", ".j2")
    )


def view_checks_token(project: Project, file: str, line: int) -> bool:
    """Whether the view defined at file:line checks a CSRF token or nonce itself and rejects without one."""
    module = next((m for m in project.python if m.path == file and m.tree is not None), None)
    if module is None or module.tree is None:
        return False
    for node in ast.walk(module.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.lineno == line:
            return _checks_token(node) and _rejects(node) and _names_csrf(node)
    return False


def _names_csrf(node: ast.AST) -> bool:
    """A name or key that says CSRF or nonce (a view reading any `token` is usually something else)."""
    return any(
        (isinstance(c, ast.Constant) and isinstance(c.value, str) and _CSRF_NAME.search(c.value))
        or (isinstance(c, ast.Name) and _CSRF_NAME.search(c.id))
        or (isinstance(c, ast.Attribute) and _CSRF_NAME.search(c.attr))
        for c in ast.walk(node)
    )
