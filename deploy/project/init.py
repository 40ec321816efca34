"""`deploy init`: find a Flask app in a project statically and write a commented deploy.yaml for it."""

from __future__ import annotations

import ast
import builtins
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.config import folders
from deploy.config.flask_version import flask_command
from deploy.config.loader import ConfigError, read_text
from deploy.project.scan import SKIP_DIRS, scan

#: Folders init never reads: the scan's (deploy.project.scan.SKIP_DIRS), and database migrations.
_SKIP_DIRS = SKIP_DIRS | {"migrations"}
SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|^KEY$|PRIVATE|DSN|DATABASE_UR[LI]|REDIS_URL|CREDENTIALS)", re.I
)
#: Names only read outside production (flasky's DEV_DATABASE_URL) are not production secrets.
NOT_PRODUCTION = re.compile(r"^(DEV|DEVELOPMENT|TEST|TESTING|LOCAL)_", re.I)
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
HEALTH_PATHS = ("/health", "/healthz", "/_health", "/health/")
FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")
WSGI_TARGET = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_][\w.]*(\(.*\))?)$")


@dataclass
class Project:
    """What `deploy init` learned about a project."""

    root: Path
    name: str
    wsgi: str | None = None
    module_dir: str | None = None
    requirements: str | None = None
    static_dir: str | None = None
    static_url: str = "/static"
    health: str | None = None
    secrets: list[str] = field(default_factory=list)
    #: Secret-like names the app reads with a default (an error tracker's DSN): not required to push.
    optional_secrets: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    instance: bool = False
    #: Where Flask puts the instance folder: beside the package's folder (src/instance in a src layout).
    instance_dir: str = "instance"
    #: Where a Flask(instance_path=...) call puts it instead (an absolute path, outside the release).
    instance_path: str | None = None
    #: Files the app writes at the project root (an SQLite database): app.shared_files.
    shared_files: list[str] = field(default_factory=list)
    migrations: bool = False
    #: Why the project has no importable WSGI entry (its own CLI builds and serves the app), or None.
    no_entry: str | None = None
    #: The folder Flask-Migrate reads (Migrate(directory=...), default migrations/), relative to the root.
    migrations_dir: str = "migrations"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    """A possible WSGI entry point (`rank`: its shape, see _scan_module); `rank_entry_points` orders them."""

    rank: int
    depth: int
    wsgi: str
    path: Path
    #: Why importing its module does more than build the app (a top-level call such as an export), or None.
    side_effect: str | None = None
    #: The factory called to build this module-level object (`app = get_app()` -> 'get_app'), or None.
    built_by: str | None = None


@dataclass(frozen=True)
class _FlaskCall:
    """Where `Flask(...)` is called, with its static folder settings."""

    depth: int
    path: Path
    static_folder: str | None
    static_url_path: str | None
    line: int = 0


def _python_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in _SKIP_DIRS or p.startswith(".") for p in parts[:-1]):
            continue
        if (
            parts[0] in ("tests", "test", "docs")
            or path.name.startswith("test_")
            or path.name == "conftest.py"
            or not path.is_file()  # a link to /dev/zero would be read forever
        ):
            continue
        files.append(path)
    return files


def _import_root(root: Path, path: Path) -> Path:
    """The folder imports start from: the project, or its src/ in a src layout."""
    src = root / "src"
    if src.is_dir() and not (src / "__init__.py").exists() and src in path.parents:
        return src
    return root


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(_import_root(root, path)).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_flask_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "Flask") or (
        isinstance(func, ast.Attribute) and func.attr == "Flask"
    )


def _is_factory_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name in FACTORY_NAMES


def _required_parameters(func: ast.FunctionDef) -> list[str]:
    args = func.args
    positional = args.posonlyargs + args.args
    required = [a.arg for a in positional[: len(positional) - len(args.defaults)]]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    return required


def _constant(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _subscript_env_names(tree: ast.AST) -> set[str]:
    """Names read as os.environ["NAME"]: the app fails without them."""
    return {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "environ"
        and (name := _constant(node.slice))
    }


def _env_names(tree: ast.AST) -> set[str]:
    """Names the code reads from the environment: os.environ, os.getenv, environs' env.str(...),
    python-decouple's config(...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        key: ast.AST | None = None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
        ):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute):
                receiver = func.value
                if (
                    (
                        isinstance(receiver, ast.Attribute)
                        and receiver.attr == "environ"
                        and func.attr in ("get", "setdefault", "pop")
                    )
                    or func.attr == "getenv"
                    or (isinstance(receiver, ast.Name) and receiver.id == "env")
                ):
                    key = node.args[0]
            elif isinstance(func, ast.Name) and func.id in ("getenv", "env", "config"):
                key = node.args[0]
        name = _constant(key)
        if name and ENV_NAME.match(name):
            names.add(name)
    return names


def _env_prefixes(tree: ast.AST) -> set[str]:
    """Prefixes of environment variables the app loads into its config wholesale:
    `app.config.from_prefixed_env(prefix="GRAMPSWEB")` (Flask's, default FLASK, joined with '_'), or a
    project's own loader called with a prefix (`app_config_from_env(app, prefix="FLASKBB_")`)."""
    prefixes: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)[1]
        given = next((_constant(k.value) for k in node.keywords if k.arg == "prefix"), None)
        if name == "from_prefixed_env":
            prefix = given or (_constant(node.args[0]) if node.args else None) or "FLASK"
            prefixes.add(prefix.rstrip("_") + "_")
        elif given and "env" in name.lower() and ENV_NAME.match(given.rstrip("_") or "-"):
            prefixes.add(given)
    return prefixes


#: A config key Flask or an extension signs with (SECRET_KEY, WTF_CSRF_SECRET_KEY).
SIGNING_KEY = re.compile(r"^(?:[A-Z][A-Z0-9_]*_)?SECRET_KEY$")


def _signing_keys(tree: ast.AST) -> set[str]:
    """Signing-key config names the code sets or reads (`WTF_CSRF_SECRET_KEY = ...` in a config class,
    `app.config["SECRET_KEY"]`, a list of required options)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and SIGNING_KEY.match(node.id):
            names.add(node.id)
        elif (value := _constant(node)) and SIGNING_KEY.match(value):
            names.add(value)
    return names


def _routes(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("route", "get", "post", "put", "delete", "patch", "add_url_rule")
            and node.args
        ):
            path = _constant(node.args[0])
            if path:
                out.add(path)
    return out


def _procfile_target(root: Path) -> str | None:
    """The WSGI target of a Procfile's web process (gunicorn, waitress-serve, ...)."""
    try:
        text = read_text(root / "Procfile")
    except ConfigError:  # missing, unreadable, not UTF-8, or endless (a link to /dev/zero)
        return None
    for line in text.splitlines():
        if not line.startswith("web:"):
            continue
        try:
            words = shlex.split(line[4:])
        except ValueError:
            continue
        for word in words:
            match = WSGI_TARGET.match(word)
            if match and not word.startswith("-") and not re.match(r"^[\d.]+$", match.group(1)):
                return word
    return None


#: Top-level calls that only set a module up (its configuration, logging, environment, paths).
SETUP_CALLS = {
    "load_dotenv",
    "find_dotenv",
    "basicConfig",
    "dictConfig",
    "fileConfig",
    "getLogger",
    "captureWarnings",
    "getenv",
    "get",
    "setdefault",
    "Path",
    "join",
    "dirname",
    "abspath",
    "realpath",
    "resolve",
    "insert",
    "append",
    "filterwarnings",
    "monkey_patch",
    "patch_all",
    "init",
    "app_context",
    "mkdir",
    "makedirs",
    "which",
}


def _call_name(call: ast.Call) -> tuple[str, str]:
    """(root name, called name) of a call: `db.init_app(app)` -> ('db', 'init_app')."""
    func: ast.AST = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    while isinstance(func, ast.Attribute | ast.Call | ast.Subscript):
        func = func.value if not isinstance(func, ast.Call) else func.func
    return (func.id if isinstance(func, ast.Name) else "", name)


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(_constant(c) == "__main__" for c in test.comparators)
    )


def _own_imports(tree: ast.Module, package: str) -> set[str]:
    """Names a module imports at its top from its own package (`from pkg.core import get_app`)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (
            node.level > 0 or (node.module or "").split(".")[0] == package
        ):
            names.update(a.asname or a.name for a in node.names)
    return names


def side_effect(tree: ast.Module, package: str | None = None) -> str | None:
    """Why importing this module does more than define things and build the app: the first top-level
    call that is not the app's construction or setup (`run_export()`, `app.run()`, a loop), as
    'line N: ...'; None for a clean module. The body of `if __name__ == "__main__":` never counts.

    `package`: the top-level package the module belongs to. Its calls of functions it imports from that
    package (`load_config(...)`, `get_scheduler()`) are how the package builds itself, not side effects;
    a script outside any package (package None) gets no such allowance."""
    built: set[str] = set()  # names bound to objects the module constructs (app, db, csrf, ...)
    if package:
        built |= _own_imports(tree, package)

    def calls_ok(node: ast.AST, constructing: bool) -> ast.Call | None:
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            root_name, name = _call_name(call)
            if name == "run" or name == "serve":
                return call
            if _is_flask_call(call) or _is_factory_call(call) or name in SETUP_CALLS or root_name in built:
                continue
            if root_name in ("os", "sys", "logging", "warnings", "pathlib", "dotenv", "environ"):
                continue
            if constructing and name[:1].isupper():  # SQLAlchemy(), CSRFProtect(), Config()
                continue
            if name[:1].isupper() and any(isinstance(a, ast.Name) and a.id in built for a in call.args):
                continue  # an extension wrapping the app: `Compress(app)`, `CORS(app)`
            if constructing and isinstance(call.func, ast.Name) and hasattr(builtins, call.func.id):
                continue  # dict(...), int(...), str(...)
            return call
        return None

    def visit(body: list[ast.stmt]) -> str | None:
        for node in body:
            if isinstance(
                node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.Pass
            ):
                continue
            if isinstance(node, ast.ClassDef):
                continue
            if isinstance(node, ast.If):
                if _is_main_guard(node):
                    continue
                found = visit(node.body) or visit(node.orelse)
                if found:
                    return found
                continue
            if isinstance(node, ast.Try):
                found = visit(node.body) or visit(node.orelse) or visit(node.finalbody)
                if found:
                    return found
                continue
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                value = node.value
                bad = calls_ok(value, constructing=True) if value is not None else None
                if bad is not None:
                    return f"line {node.lineno}: {ast.unparse(bad)[:60]}"
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                built.update(t.id for t in targets if isinstance(t, ast.Name))
                continue
            if isinstance(node, ast.Expr):
                if _constant(node.value) is not None or isinstance(node.value, ast.Constant):
                    continue  # a docstring
                bad = calls_ok(node.value, constructing=False)
                if bad is None and isinstance(node.value, ast.Call):
                    continue
                shown = ast.unparse(bad if bad is not None else node.value)[:60]
                return f"line {node.lineno}: {shown}"
            if isinstance(node, ast.With) and all(
                calls_ok(i.context_expr, False) is None for i in node.items
            ):
                found = visit(node.body)  # `with app.app_context(): db.create_all()`
                if found:
                    return found
                continue
            if isinstance(node, ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
                return f"line {node.lineno}: a top-level {type(node).__name__.lower()} block"
        return None

    return visit(tree.body)


#: Servers whose command line names the WSGI target (`gunicorn x:y`, `waitress-serve x:y`, `uwsgi --module`).
SERVER_WORDS = re.compile(r"\b(gunicorn|uwsgi|waitress-serve|hypercorn|uvicorn|granian)\b")
TARGET_IN_TEXT = re.compile(r"(?<![\w./:-])([A-Za-z_][\w.]*:[A-Za-z_][\w.]*(?:\([^)\s]*\))?)")


def _read(path: Path) -> str:
    try:
        return read_text(path) if path.is_file() else ""
    except ConfigError:  # unreadable, not UTF-8, or endless (a link to /dev/zero)
        return ""


def _served_targets(root: Path) -> list[tuple[int, str, str]]:
    """(strength, target, where) for each WSGI target the project names where it says how it is served:
    0 the Procfile's web process or a Dockerfile's CMD/ENTRYPOINT running a server; 1 a server command
    in the README or docs/, or an entry point in pyproject.toml/setup.cfg naming an app or factory."""
    found: list[tuple[int, str, str]] = []
    procfile = _procfile_target(root)
    if procfile:
        found.append((0, procfile, "the Procfile"))
    for docker in sorted(root.glob("Dockerfile*")):
        for line in _read(docker).splitlines():
            words = line.strip().split(None, 1)
            if words and words[0].upper() in ("CMD", "ENTRYPOINT") and SERVER_WORDS.search(line):
                found += [(0, t, docker.name) for t in TARGET_IN_TEXT.findall(line.replace('"', " "))]
    docs = [*sorted(root.glob("README*")), *sorted((root / "docs").rglob("*"))[:200]]
    for doc in docs:
        if doc.suffix.lower() not in ("", ".md", ".rst", ".txt", ".markdown"):
            continue
        for line in _read(doc).splitlines():
            if SERVER_WORDS.search(line):
                found += [(1, t, doc.name) for t in TARGET_IN_TEXT.findall(line.replace("`", " "))]
    for meta in ("pyproject.toml", "setup.cfg"):
        for target in TARGET_IN_TEXT.findall(_read(root / meta)):
            if target.split(":", 1)[1].split("(")[0] in (*FACTORY_NAMES, "app", "application"):
                found.append((1, target, meta))
    return [(strength, t, where) for strength, t, where in found if not re.match(r"^[\d.]+:", t)]


def rank_entry_points(root: Path, candidates: list[_Candidate]) -> list[tuple[_Candidate, str | None]]:
    """Every candidate entry point, best first, with the evidence that it is served (or None).

    The one place entry points are ranked: a module whose import has side effects comes after every
    clean one, whatever else speaks for it; then how the project says it is served (Procfile,
    Dockerfile, README/docs, package metadata), then a module named wsgi/asgi, then the candidate's
    shape (an app built at the top of a module, a create_app/make_app factory, deeper objects), then
    the shallowest. The name only breaks ties between candidates nothing else tells apart."""
    targets = _served_targets(root)
    by_module: dict[str, list[_Candidate]] = {}
    for c in candidates:
        by_module.setdefault(c.wsgi.split(":")[0], []).append(c)
    # A target naming a module that exists but was not found as a candidate (a middleware, an app
    # built by a call of another name) is still what the project serves.
    extra = []
    for strength, target, _where in targets:
        module = target.split(":")[0]
        if strength == 0 and module not in by_module and (file := _module_file(root, module)) is not None:
            extra.append(_Candidate(0, 0, target, file))
    pool = candidates + extra

    def evidence(c: _Candidate) -> tuple[int, str | None]:
        name = c.wsgi.split("(")[0]
        for strength, target, where in targets:
            if target.split("(")[0] == name:
                return strength, f"entry point from {where}: {target}"
        last = c.wsgi.split(":")[0].rsplit(".", 1)[-1]
        return (2, None) if last in ("wsgi", "asgi") else (3, None)

    def factory_name(c: _Candidate) -> int:
        called = c.wsgi.split(":")[1].split("(")[0]
        return 0 if called in ("create_app", "make_app", "app", "application") else 1

    # A factory the project itself calls at the top of a clean module (`app = get_app()` in app.py) is
    # a building block: the object that module builds is the app (that module also wires routes,
    # extensions, logging), so the bare factory comes after it.
    building_blocks = {c.built_by for c in pool if c.built_by and c.side_effect is None}

    def building_block(c: _Candidate) -> bool:
        called = c.wsgi.split(":")[1]
        return called.endswith("()") and called[:-2] in building_blocks

    keyed = [
        (
            (
                c.side_effect is not None,
                evidence(c)[0],
                building_block(c),
                c.rank,
                c.depth,
                factory_name(c),
                c.wsgi,
            ),
            c,
            evidence(c)[1],
        )
        for c in pool
    ]
    keyed.sort(key=lambda k: k[0])
    return [(c, why) for _key, c, why in keyed]


def _completed_elsewhere(
    root: Path, modules: list[tuple[Path, ast.Module]], candidates: list[_Candidate]
) -> dict[str, str]:
    """Candidates whose app gets its blueprints from another top-level function (the project's own CLI
    or builder: `def main(): app = create_app(); app.register_blueprint(web); ...`, or a builder that
    registers them on the module-level app): wsgi -> 'main() in cps/main.py:30'. Importing such a
    candidate serves an app without those routes. A function called at the top of a module (routes
    registered on import) or a candidate itself does not count; nor does a helper given the app."""
    objects = {c.wsgi for c in candidates if not c.wsgi.endswith(")")}
    factories = {c.wsgi.split(":")[1].split("(")[0]: c.wsgi for c in candidates if c.wsgi.endswith(")")}
    wsgis = {c.wsgi.split("(")[0] for c in candidates}
    called_on_import = {
        _call_name(node.value)[1]
        for _path, tree in modules
        for node in tree.body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    }
    found: dict[str, str] = {}
    for path, tree in modules:
        module = _module_name(root, path)
        imported = {
            alias.asname or alias.name: f"{node.module}:{alias.name}"
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 0
            for alias in node.names
        }
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef) or f"{module}:{fn.name}" in wsgis:
                continue
            if fn.name in called_on_import:
                continue
            args = fn.args
            params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
            built = {
                node.targets[0].id: factories[_call_name(node.value)[1]]
                for node in ast.walk(fn)
                if isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)
                and _call_name(node.value)[1] in factories
            }
            for node in ast.walk(fn):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register_blueprint"
                    and isinstance(node.func.value, ast.Name)
                ):
                    continue
                name = node.func.value.id
                target = built.get(name)
                if target is None and name not in params:
                    target = next((t for t in (f"{module}:{name}", imported.get(name)) if t in objects), None)
                if target is not None and target not in found:
                    found[target] = f"{fn.name}() in {path.relative_to(root).as_posix()}:{fn.lineno}"
    # A factory that returns its module's app object (`def create_app(): ...; return app`): that
    # object is the same incomplete app.
    for path, tree in modules:
        module = _module_name(root, path)
        for fn in tree.body:
            where = found.get(f"{module}:{fn.name}()") if isinstance(fn, ast.FunctionDef) else None
            if where is None:
                continue
            for node in ast.walk(fn):
                returned = node.value if isinstance(node, ast.Return) else None
                if isinstance(returned, ast.Name) and f"{module}:{returned.id}" in objects:
                    found.setdefault(f"{module}:{returned.id}", where)
    return found


def _no_entry(
    root: Path, completed: dict[str, str], candidates: list[_Candidate], calls: list[_FlaskCall]
) -> str | None:
    """Why no candidate is an importable entry (see _completed_elsewhere), or None when one is."""
    if candidates:
        return None
    if completed:
        wsgi, where = sorted(completed.items())[0]
        return f"{wsgi} gets its routes only from {where}, which the project's own CLI runs"
    if calls:
        call = min(calls, key=lambda c: (c.depth, str(c.path)))
        where = f"{call.path.relative_to(root).as_posix()}:{call.line}"
        return f"Flask(...) is only called at {where}, inside code the project's own CLI runs"
    return None


def _importable(
    root: Path, modules: list[tuple[Path, ast.Module]], candidates: list[_Candidate]
) -> tuple[list[_Candidate], dict[str, str]]:
    completed = _completed_elsewhere(root, modules, candidates)
    return [c for c in candidates if c.wsgi not in completed], completed


def entry_point(root: Path) -> tuple[str | None, str | None]:
    """(the project's best WSGI entry point, None) as `deploy init` finds it; (None, why) when there is
    none, or when every candidate's module runs code on import (then nothing may import it blindly)."""
    root = root.resolve()
    candidates: list[_Candidate] = []
    modules: list[tuple[Path, ast.Module]] = []
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        modules.append((path, tree))
        _scan_module(root, path, tree, Project(root=root, name="x"), candidates, [], {})
    candidates, completed = _importable(root, modules, candidates)
    ranked = rank_entry_points(root, candidates)
    if not ranked:
        return None, _no_entry(root, completed, candidates, []) or "no Flask app found"
    best = ranked[0][0]
    if best.side_effect is not None:
        where = best.path.relative_to(root).as_posix()
        return (
            None,
            f"{best.wsgi} runs code when imported ({where} {best.side_effect}): name the app with --app",
        )
    return best.wsgi, None


def _module_file(root: Path, module: str) -> Path | None:
    for base in (root, root / "src"):
        stem = base.joinpath(*module.split("."))
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "app-" + slug if slug else "app"
    return slug[:32].rstrip("-")


def _parameter_default(tree: ast.Module, value: ast.expr) -> ast.expr:
    """A factory's parameter passed on (`instance_path=instance_path`) stands for its default
    (`def create_app(instance_path=None)`: Flask's own default folder); any other value for itself."""
    if not isinstance(value, ast.Name):
        return value
    for func in tree.body:
        if isinstance(func, ast.FunctionDef):
            args = func.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            for arg, default in pairs:
                if arg.arg == value.id:
                    return default
    return value


def _last_name(node: ast.expr) -> str:
    """`Flask` for `Flask` and `flask.Flask`."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _returns_new_app(func: ast.FunctionDef, flask_classes: set[str]) -> bool:
    """The function builds a Flask app (`app = Flask(...)`, or a subclass) and returns it."""
    built = {
        t.id
        for node in ast.walk(func)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and _last_name(node.value.func) in flask_classes
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for node in ast.walk(func):
        value = node.value if isinstance(node, ast.Return) else None
        if isinstance(value, ast.Name) and value.id in built:
            return True
        if isinstance(value, ast.Call) and _last_name(value.func) in flask_classes:
            return True
    return False


def _scan_module(
    root: Path,
    path: Path,
    tree: ast.Module,
    project: Project,
    candidates: list[_Candidate],
    flask_calls: list[_FlaskCall],
    factory_notes: dict[str, str],
) -> None:
    module = _module_name(root, path)
    depth = module.count(".")
    is_package = path.name == "__init__.py" or depth > 0
    effect = side_effect(tree, module.split(".")[0] if is_package else None)
    start = len(candidates)
    # Flask and this module's subclasses of it (dtale's `class DtaleFlask(Flask)`).
    flask_classes = {"Flask"} | {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(_last_name(b) == "Flask" for b in node.bases)
    }
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef)
            and node.name not in FACTORY_NAMES
            and _returns_new_app(node, flask_classes)
        ):
            # A factory by what it does, whatever its name (dtale's build_app()).
            required = _required_parameters(node)
            candidates.append(_Candidate(5 if required else 3, depth, f"{module}:{node.name}()", path))
            if required:
                factory_notes[f"{module}:{node.name}()"] = (
                    f"{module}.{node.name}() needs {', '.join(required)}: set app.wsgi to call it with them"
                )
        if isinstance(node, ast.FunctionDef) and node.name in FACTORY_NAMES:
            required = _required_parameters(node)
            if required:
                candidates.append(_Candidate(5, depth, f"{module}:{node.name}()", path))
                factory_notes[f"{module}:{node.name}()"] = (
                    f"{module}.{node.name}() needs {', '.join(required)}: set app.wsgi to call it with "
                    f"them, for example \"{module}:{node.name}('production')\""
                )
            else:
                candidates.append(_Candidate(3, depth, f"{module}:{node.name}()", path))
        if isinstance(node, ast.Assign) and (_is_flask_call(node.value) or _is_factory_call(node.value)):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    # An app object built in a top-level module (wsgi.py, autoapp.py, app.py) is what
                    # the project itself serves; deeper ones come after factories.
                    rank = 1 if depth == 0 else 4
                    if _is_factory_call(node.value) and depth > 0:
                        rank = 6
                    value = node.value
                    built_by = None
                    if isinstance(value, ast.Call) and _is_factory_call(value):
                        built_by = _call_name(value)[1]
                    candidates.append(
                        _Candidate(rank, depth, f"{module}:{target.id}", path, built_by=built_by)
                    )
    if effect is not None:
        # A factory is only called by the server, but importing its module runs the side effect too.
        candidates[start:] = [replace(c, side_effect=effect) for c in candidates[start:]]
    for any_node in ast.walk(tree):
        if isinstance(any_node, ast.Call) and _is_flask_call(any_node):
            kwargs = {k.arg: k.value for k in any_node.keywords if k.arg}
            folder: str | None = "static"
            if "static_folder" in kwargs:
                value = kwargs["static_folder"]
                folder = (
                    _constant(value)
                    if not (isinstance(value, ast.Constant) and value.value is None)
                    else None
                )
            flask_calls.append(
                _FlaskCall(depth, path, folder, _constant(kwargs.get("static_url_path")), any_node.lineno)
            )
            given = _parameter_default(tree, kwargs["instance_path"]) if "instance_path" in kwargs else None
            if given is not None and not (isinstance(given, ast.Constant) and given.value is None):
                project.instance_path = _constant(given) or ast.unparse(given)
        if isinstance(any_node, ast.keyword) and any_node.arg == "instance_relative_config":
            # `instance_relative_config=False` (Flask's default, spelled out) reads nothing from it.
            value = any_node.value
            if not (isinstance(value, ast.Constant) and not value.value):
                project.instance = True
        if isinstance(any_node, ast.ImportFrom) and any_node.module == "flask_migrate":
            project.migrations = True
        if isinstance(any_node, ast.Call) and _call_name(any_node)[1] == "Migrate":
            directory = next((_constant(k.value) for k in any_node.keywords if k.arg == "directory"), None)
            if directory is None and len(any_node.args) > 2:
                directory = _constant(any_node.args[2])
            if directory:
                project.migrations_dir = directory


def inspect_project(root: Path) -> Project:
    """Find the WSGI entry point, requirements, static folder, health route and secrets."""
    root = root.resolve()
    project = Project(root=root, name=_slug(root.name))
    candidates: list[_Candidate] = []
    flask_calls: list[_FlaskCall] = []
    factory_notes: dict[str, str] = {}
    env_names: set[str] = set()
    required_names: set[str] = set()
    routes: set[str] = set()
    prefixes: set[str] = set()
    signing: set[str] = {"SECRET_KEY"}
    modules: list[tuple[Path, ast.Module]] = []
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            project.notes.append(f"skipped {path.relative_to(root)}: it does not parse")
            continue
        env_names |= _env_names(tree)
        prefixes |= _env_prefixes(tree)
        signing |= _signing_keys(tree)
        required_names |= _subscript_env_names(tree)
        routes |= _routes(tree)
        modules.append((path, tree))
        _scan_module(root, path, tree, project, candidates, flask_calls, factory_notes)
    candidates, completed = _importable(root, modules, candidates)
    project.no_entry = _no_entry(root, completed, candidates, flask_calls)
    ranked = rank_entry_points(root, candidates)
    if ranked:
        chosen, why = ranked[0]
        project.wsgi = chosen.wsgi
        if why:
            project.notes.append(why)
        skipped = sorted({c.path.relative_to(root).as_posix() for c, _ in ranked if c.side_effect})
        if skipped:
            project.notes.append(
                f"not an entry point: importing {', '.join(skipped)} does more than build the app "
                f"({next(c.side_effect for c, _ in ranked if c.side_effect)}); deploy never imports it"
                if chosen.side_effect is None
                else f"{chosen.path.relative_to(root).as_posix()} runs code when imported "
                f"({chosen.side_effect}): check app.wsgi before 'deploy check --import'"
            )
        if chosen.wsgi in factory_notes:
            project.notes.append(factory_notes[chosen.wsgi])
        _choose_static(root, project, chosen, flask_calls)
        if _import_root(root, chosen.path) != root:
            project.instance_dir = "src/instance"
            project.notes.append(
                "src/ layout: the hosts run the app from the release with src/ on PYTHONPATH (it is not "
                "installed), and Flask keeps its instance folder in src/instance"
            )
    _find_requirements(root, project)
    project.health = next((p for p in HEALTH_PATHS if p in routes), None)
    if project.health is None:
        project.notes.append(
            "no /health route found: add one that returns 200, deploy's health gate probes it"
        )
    if (root / project.instance_dir).is_dir():
        project.instance = True
    if project.instance_path is not None:
        # Flask only takes an absolute instance_path: the folder is outside the release, nothing to share.
        project.instance = False
        project.notes.append(
            f"Flask(instance_path={project.instance_path}) keeps the instance folder outside the project: "
            "not shared; create it on the hosts (with the config it reads) yourself"
        )
    project.shared_files = _root_files_written(root)
    # An app loading PREFIX_* variables into its config takes its signing keys from PREFIX_SECRET_KEY...
    env_names |= {prefix + key for prefix in prefixes for key in signing}
    required_names |= {prefix + key for prefix in prefixes for key in signing}
    production = {n for n in env_names if not NOT_PRODUCTION.match(n)}
    secret_like = {n for n in production if SECRET_NAME.search(n)}
    # An error tracker's DSN read with a default is optional: the app runs without it.
    optional = {n for n in secret_like if n.endswith("DSN") and n not in required_names}
    project.secrets = sorted(secret_like - optional)
    project.optional_secrets = sorted(optional)
    project.env = sorted(
        n
        for n in production
        # LOG_LEVEL is in the env: deploy init writes.
        if not SECRET_NAME.search(n) and n not in ("FLASK_DEBUG", "FLASK_ENV", "LOG_LEVEL")
    )
    if project.secrets:
        names = ", ".join(project.secrets)
        project.notes.append(
            f"secrets read from the environment: {names} (values go in .env, never deploy.yaml)"
        )
    if project.optional_secrets:
        names = ", ".join(project.optional_secrets)
        project.notes.append(
            f"optional secrets (read with a default): {names}; add them to app.secrets to ship them"
        )
    if project.env:
        project.notes.append(
            f"settings read from the environment: {', '.join(project.env)} (add them to app.env)"
        )
    if project.migrations and not (root / project.migrations_dir / "env.py").is_file():
        # `flask db upgrade` reads the folder Migrate names, from the release's root: without it there,
        # the release command would fail every push.
        project.migrations = False
        project.notes.append(
            f"Flask-Migrate found, but no {project.migrations_dir}/ folder with an env.py at the project "
            "root (where 'flask db upgrade' looks): no release command proposed; if the app migrates "
            "elsewhere, add app.release with 'db upgrade --directory <folder>'"
        )
    if project.migrations:
        project.notes.append("Flask-Migrate found: 'flask db upgrade' runs once per push, before the switch")
    return project


#: What writes a database file (deploy.project's WritePath.what).
_DATABASE_WRITERS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI", "sqlite3.connect()")


def _root_files_written(root: Path) -> list[str]:
    """SQLite files the production code writes at the project root (`sqlite3.connect('app.db')`,
    `sqlite:///app.db` from the working folder or from a root module's folder): lost on every push
    unless shared. Never a file committed in git (a shared copy would replace it)."""
    found: list[str] = []
    for w in scan(root).writes:
        at_root = w.base == "relative" or (w.base == "project" and "/" not in w.file)
        path = folders.normalized(w.path)
        if w.production and w.what in _DATABASE_WRITERS and at_root and "/" not in path and path != ".":
            found.append(path)
    found = sorted(set(found))
    refused = {index for index, _why in folders.shared_files_by_contents(found, root)}
    return [path for index, path in enumerate(found) if index not in refused]


def _choose_static(root: Path, project: Project, chosen: _Candidate, calls: list[_FlaskCall]) -> None:
    """The static folder of the Flask() call that builds the chosen app (same file, else the shallowest)."""
    project.module_dir = str(chosen.path.parent.relative_to(root)) if chosen.path.parent != root else ""
    same_file = [c for c in calls if c.path == chosen.path]
    call = (
        same_file[0] if same_file else (min(calls, key=lambda c: (c.depth, str(c.path))) if calls else None)
    )
    if call is None or call.static_folder is None:
        return
    static = (call.path.parent / call.static_folder).resolve()
    if root not in static.parents or not static.is_dir():
        return
    project.static_dir = str(static.relative_to(root))
    if call.static_url_path:
        project.static_url = "/" + call.static_url_path.strip("/")
    if (root / ".git").exists():
        try:
            tracked = subprocess.run(
                ["git", "-C", str(root), "ls-files", "--", project.static_dir],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return
        if tracked.returncode == 0 and not tracked.stdout.strip():
            project.notes.append(
                f"{project.static_dir} holds no committed files (built by a bundler?): a push ships the "
                "committed HEAD, so build and commit them, or the site serves 404 for them"
            )


def _find_requirements(root: Path, project: Project) -> None:
    for candidate in (
        "requirements.txt",
        "requirements/production.txt",
        "requirements/prod.txt",
        "pyproject.toml",
    ):
        if (root / candidate).is_file():
            project.requirements = candidate
            break
    if project.requirements is None:
        project.notes.append(
            "no requirements.txt found: add one with pinned versions (pip freeze > requirements.txt)"
        )
    elif project.requirements == "pyproject.toml":
        project.notes.append(
            "dependencies come from pyproject.toml; pinned requirements.txt deploys more reproducibly"
        )


def _quoted(values: list[str]) -> str:
    """YAML double-quoted strings (a JSON string is one), so no value can change the structure."""
    return ", ".join(json.dumps(v) for v in values)


def write_deploy_yaml(project: Project, domain: str | None = None, hosts: list[str] | None = None) -> str:
    """A commented deploy.yaml for `project` (validated by the caller's next load)."""
    module = (project.wsgi or "app:app").split(":")[0]
    secrets = ", ".join(project.secrets)
    rows: list[tuple[str, str]] = [
        ("app:", ""),
        (f"  name: {project.name}", "names the service, the user's folders and the unit"),
        (f'  wsgi: "{project.wsgi}"', "module:app, or a factory call"),
        (
            f"  requirements: {project.requirements or 'requirements.txt'}",
            "pinned versions deploy reproducibly",
        ),
    ]
    if project.static_dir:
        static = f"{{url: {project.static_url}, dir: {project.static_dir}}}"
        rows.append((f"  static: {static}", "served by Nginx, cached for a year"))
    rows += [
        (f"  health: {project.health or '/health'}", "must answer 200 before a release takes traffic"),
        ("  env: {LOG_LEVEL: info}", "plain settings; never secrets here"),
        (f"  secrets: [{secrets}]", "names only: values come from the environment or .env"),
    ]
    if not project.secrets:
        rows[-1] = ("  secrets: []", "none read from the environment; SECRET_KEY belongs here for sessions")
    if project.optional_secrets:
        names = ", ".join(project.optional_secrets)
        rows.append(
            (
                f"  # optional secrets the code reads with a default: {names} (add to secrets: to ship them)",
                "",
            )
        )
    if project.env:
        rows.append(
            (f"  # the code also reads {', '.join(project.env)}: add what production needs to env:", "")
        )
    if project.instance:
        rows.append((f"  shared: [{project.instance_dir}]", "kept across releases and rollbacks"))
    if project.shared_files:
        rows.append((f"  shared_files: [{_quoted(project.shared_files)}]", "files the app writes, kept too"))
    if project.migrations:
        directory = project.migrations_dir.strip("/")
        upgrade = "db upgrade"
        if directory != "migrations":
            upgrade += f" --directory {shlex.quote(directory)}"
        release = flask_command(project.root, module, upgrade)
        rows.append((f'  release: ["{release}"]', "once per push, before the switch"))
    rows += [
        ("", ""),
        ("server:", ""),
        (
            f"  domains: [{_quoted([domain or project.name + '.example.com'])}]",
            "the first one names the certificate",
        ),
        (f"  hosts: [{_quoted(hosts or ['web1.example.com'])}]", "'host', 'user@host' or 'user@host:port'"),
        (f"  user: {project.name}", "the app runs as this system user, never root"),
        ("  tls: {email: ops@example.com}", "Let's Encrypt; or {cert: ..., key: ...}, or false"),
        ("", ""),
        ("gunicorn: {workers: auto, worker_class: sync, timeout: 30}", "auto = 2 x the host's cores + 1"),
        ("nginx: {client_max_body_size: 16m}", "keep >= the app's MAX_CONTENT_LENGTH"),
        ("", ""),
        ("environments:", "overlays: deploy push -e staging"),
        ("  staging:", ""),
        ("    server: {hosts: [staging1.example.com]}", ""),
    ]
    # Comment-only rows (no comment column of their own) do not push the column out.
    width = max(len(text) for text, comment in rows if comment) + 2
    lines = [
        f"# deploy.yaml for {project.name}, written by 'deploy init'. Every key: 'deploy schema', or",
        "# playbooks/full.yaml in deploy's repository.",
        "# Then: 'deploy config', 'deploy render', 'deploy check'.",
    ]
    lines += [f"{text:<{width}}# {comment}" if comment else text for text, comment in rows]
    return "\n".join(lines) + "\n"
