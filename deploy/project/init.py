"""`deploy init`: find a Flask app in a project statically and write a commented deploy.yaml for it."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploy.config.loader import ConfigError, read_text
from deploy.project.scan import FACTORY_NAMES, SKIP_DIRS

#: Folders init never reads: the scan's (deploy.project.scan.SKIP_DIRS), and database migrations.
_SKIP_DIRS = SKIP_DIRS | {"migrations"}
SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|^KEY$|PRIVATE|DSN|DATABASE_UR[LI]|REDIS_URL|CREDENTIALS)", re.I
)
#: Names only read outside production (flasky's DEV_DATABASE_URL) are not production secrets.
NOT_PRODUCTION = re.compile(r"^(DEV|DEVELOPMENT|TEST|TESTING|LOCAL)_", re.I)
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
HEALTH_PATHS = ("/health", "/healthz", "/_health", "/health/")
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
    migrations: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    """A possible WSGI entry point; the lowest (rank, depth, wsgi) wins."""

    rank: int
    depth: int
    wsgi: str
    path: Path


@dataclass(frozen=True)
class _FlaskCall:
    """Where `Flask(...)` is called, with its static folder settings."""

    depth: int
    path: Path
    static_folder: str | None
    static_url_path: str | None


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
    for node in tree.body:
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
                    candidates.append(_Candidate(rank, depth, f"{module}:{target.id}", path))
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
            flask_calls.append(_FlaskCall(depth, path, folder, _constant(kwargs.get("static_url_path"))))
        if isinstance(any_node, ast.keyword) and any_node.arg == "instance_relative_config":
            project.instance = True
        if isinstance(any_node, ast.ImportFrom) and any_node.module == "flask_migrate":
            project.migrations = True


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
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            project.notes.append(f"skipped {path.relative_to(root)}: it does not parse")
            continue
        env_names |= _env_names(tree)
        required_names |= _subscript_env_names(tree)
        routes |= _routes(tree)
        _scan_module(root, path, tree, project, candidates, flask_calls, factory_notes)
    procfile = _procfile_target(root)
    if procfile:
        module_file = _module_file(root, procfile.split(":")[0])
        if module_file is not None:
            candidates.append(_Candidate(0, 0, procfile, module_file))
    if candidates:
        chosen = min(candidates, key=lambda c: (c.rank, c.depth, c.wsgi))
        project.wsgi = chosen.wsgi
        if chosen.rank == 0:
            project.notes.append(f"entry point from the Procfile: {chosen.wsgi}")
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
    if project.migrations:
        project.notes.append("Flask-Migrate found: 'flask db upgrade' runs once per push, before the switch")
    return project


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
    if project.migrations:
        rows.append((f'  release: ["flask --app {module} db upgrade"]', "once per push, before the switch"))
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
