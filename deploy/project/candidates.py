"""What `deploy init` reads in a project's modules: Flask apps and factories (the candidates), its
routes and its Procfile target (the environment names and signing keys it reads: deploy.project.envreads)."""

from __future__ import annotations

import ast
import builtins
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.config.loader import ConfigError, read_text
from deploy.project.frameworks import Stack
from deploy.project.scan import FACTORY_NAMES, SKIP_DIRS, is_main_guard, is_skipped_dir

#: Folders init never reads: the scan's (deploy.project.scan.SKIP_DIRS), and database migrations.
_SKIP_DIRS = SKIP_DIRS | {"migrations"}
SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|^KEY$|PRIVATE|DSN|DATABASE_UR[LI]|REDIS_URL|CREDENTIALS)", re.I
)
#: Names only read outside production (flasky's DEV_DATABASE_URL) are not production secrets.
NOT_PRODUCTION = re.compile(r"^(DEV|DEVELOPMENT|TEST|TESTING|LOCAL)_", re.I)
#: Health routes init proposes as app.health, in order (as served: a blueprint's url_prefix joined).
HEALTH_PATHS = (
    "/health",
    "/healthz",
    "/_health",
    "/health/",
    "/healthcheck",
    "/health-check",
    "/_healthcheck",
    "/up",  # Rails' and Kamal's convention
    "/up/",
)
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
    required_env: list[str] = field(default_factory=list)  # of env: read with no default (os.environ["X"])
    instance: bool = False
    #: Where Flask puts the instance folder: beside the package's folder (src/instance in a src layout).
    instance_dir: str = "instance"
    #: Where a Flask(instance_path=...) call puts it instead (an absolute path, outside the release).
    instance_path: str | None = None
    #: Folders of the project the app writes at runtime (logs, a search index), besides the instance
    #: folder: app.shared.
    shared_dirs: list[str] = field(default_factory=list)
    #: Environment variables naming the app's database file, pointed into the shared data/ folder.
    db_file_env: dict[str, str] = field(default_factory=dict)
    #: Settings the app cannot start without, with the value the project's .env.example gives them.
    example_env: dict[str, str] = field(default_factory=dict)
    #: Files the app writes at the project root (an SQLite database): app.shared_files.
    shared_files: list[str] = field(default_factory=list)
    migrations: bool = False
    plain_alembic: bool = False  # alembic.ini at the root, no Flask-Migrate: `python -m alembic upgrade head`
    #: The migrations are Flask-Alembic's (no env.py in the folder), not Flask-Migrate's.
    alembic: bool = False
    #: The project's own console script when it is a FlaskGroup (`flaskbb = flaskbb.cli:flaskbb`): the
    #: release command runs through it, with the app it builds.
    cli_script: str | None = None
    #: Why the project has no importable WSGI entry (its own CLI builds and serves the app), or None.
    no_entry: str | None = None
    #: The folder Flask-Migrate reads (Migrate(directory=...), default migrations/), relative to the root.
    migrations_dir: str = "migrations"
    #: How the app is served and what runs beside it (ASGI, Flask-SocketIO, Celery, RQ, APScheduler).
    stack: Stack = field(default_factory=Stack)
    #: The `gunicorn:` line the stack needs (text, comment), or None for the default.
    gunicorn: tuple[str, str] | None = None
    #: Processes besides web (name -> command), from the project's Procfile.
    processes: dict[str, str] = field(default_factory=dict)
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
        if any(p in _SKIP_DIRS or is_skipped_dir(p) or p.startswith(".") for p in parts[:-1]):
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
#: A translated string (Flask-Babel, gettext) is setup too: `login.login_message = _l("Please log in")`.
SETUP_CALLS |= {"_", "_l", "gettext", "lazy_gettext", "ngettext", "lazy_ngettext"}


#: Top-level reads of a model or data file into a name (`model = pickle.load(open("model.pkl", "rb"))`,
#: `joblib.load`, `torch.load`, `keras.models.load_model`, `pd.read_csv`): loading once at import is
#: what a preloaded app is for, not a side effect.
LOAD_CALLS = {"load", "loads", "load_model", "load_learner", "from_pretrained", "read_csv", "read_parquet"}


def _call_name(call: ast.Call) -> tuple[str, str]:
    """(root name, called name) of a call: `db.init_app(app)` -> ('db', 'init_app')."""
    func: ast.AST = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    while isinstance(func, ast.Attribute | ast.Call | ast.Subscript):
        func = func.value if not isinstance(func, ast.Call) else func.func
    return (func.id if isinstance(func, ast.Name) else "", name)


def _own_imports(tree: ast.Module, package: str) -> set[str]:
    """Names a module imports at its top from its own package (`from pkg.core import get_app`)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (
            node.level > 0 or (node.module or "").split(".")[0] == package
        ):
            names.update(a.asname or a.name for a in node.names)
    return names


def _unbuilding_call(node: ast.AST, constructing: bool, built: set[str]) -> ast.Call | None:
    """The first call in `node` that does more than build or set up the module (None: none does);
    `constructing`: `node` is the value of an assignment."""
    # Built to be handed to a built object or a setup call: `manager.add_command("shell", Shell())`,
    # `sentry_sdk.init(integrations=[FlaskIntegration()])`.
    handed: set[int] = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        root_name, name = _call_name(call)
        if name == "run" or name == "serve":
            return call
        if _is_flask_call(call) or _is_factory_call(call) or name in SETUP_CALLS or root_name in built:
            handed.update(id(n) for a in (*call.args, *call.keywords) for n in ast.walk(a))
            continue
        if constructing and name in LOAD_CALLS:
            continue  # the value of an assignment: a model or data file loaded into a name
        if root_name in ("os", "sys", "logging", "warnings", "pathlib", "dotenv", "environ"):
            continue
        if (constructing or id(call) in handed) and name[:1].isupper():  # SQLAlchemy(), Config()
            continue
        if name[:1].isupper() and any(isinstance(a, ast.Name) and a.id in built for a in call.args):
            continue  # an extension wrapping the app: `Compress(app)`, `CORS(app)`
        if constructing and isinstance(call.func, ast.Name) and hasattr(builtins, call.func.id):
            continue  # dict(...), int(...), str(...)
        return call
    return None


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

    def visit(body: list[ast.stmt]) -> str | None:
        for node in body:
            if isinstance(
                node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.Pass
            ):
                continue
            if isinstance(node, ast.ClassDef):
                continue
            if isinstance(node, ast.If):
                if is_main_guard(node):
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
                bad = _unbuilding_call(value, True, built) if value is not None else None
                if bad is not None:
                    return f"line {node.lineno}: {ast.unparse(bad)[:60]}"
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                built.update(t.id for t in targets if isinstance(t, ast.Name))
                continue
            if isinstance(node, ast.Expr):
                if _constant(node.value) is not None or isinstance(node.value, ast.Constant):
                    continue  # a docstring
                bad = _unbuilding_call(node.value, False, built)
                if bad is None and isinstance(node.value, ast.Call):
                    continue
                shown = ast.unparse(bad if bad is not None else node.value)[:60]
                return f"line {node.lineno}: {shown}"
            if isinstance(node, ast.With) and all(
                _unbuilding_call(i.context_expr, False, built) is None for i in node.items
            ):
                found = visit(node.body)  # `with app.app_context(): db.create_all()`
                if found:
                    return found
                continue
            if isinstance(node, ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
                return f"line {node.lineno}: a top-level {type(node).__name__.lower()} block"
        return None

    return visit(tree.body)


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


def _scan_flask_calls(
    path: Path, tree: ast.Module, depth: int, project: Project, flask_calls: list[_FlaskCall]
) -> None:
    """What the module's `Flask(...)` calls say (static and instance folders), and Flask-Migrate's folder."""
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
        if isinstance(any_node, ast.Call) and _alembic_db_command(any_node, tree):
            # Flask-Alembic registers the same `db upgrade` (its own env, no env.py needed).
            project.migrations = project.alembic = True
        if isinstance(any_node, ast.Call) and _call_name(any_node)[1] == "Migrate":
            directory = next((_constant(k.value) for k in any_node.keywords if k.arg == "directory"), None)
            if directory is None and len(any_node.args) > 2:
                directory = _constant(any_node.args[2])
            if directory:
                project.migrations_dir = directory


def _alembic_db_command(call: ast.Call, tree: ast.Module) -> bool:
    """Flask-Alembic's `Alembic(app)` (in a module importing flask_alembic) or `alembic.init_app(app)`
    whose command is `db` (its default, or command_name="db")."""
    owner, name = _call_name(call)
    if name == "Alembic":
        imported = any(isinstance(n, ast.ImportFrom) and n.module == "flask_alembic" for n in ast.walk(tree))
        if not imported or not call.args:
            return False  # Alembic() alone registers nothing: its init_app() does
    elif name != "init_app" or owner.lower() != "alembic":
        return False
    command = next((k.value for k in call.keywords if k.arg == "command_name"), None)
    return command is None or _constant(command) == "db"


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
        if isinstance(node, ast.ClassDef) and any(_last_name(b) == "Flask" for b in node.bases)
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
    _scan_flask_calls(path, tree, depth, project, flask_calls)
