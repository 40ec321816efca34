"""`deploy init`: find a Flask app in a project statically and write a commented deploy.yaml for it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {
    ".git",
    ".hg",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    "site-packages",
    "migrations",
}
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE|DSN|DATABASE_URL|CREDENTIALS)", re.I)
HEALTH_PATHS = ("/health", "/healthz", "/_health", "/health/")


@dataclass
class Project:
    """What `deploy init` learned about a project."""

    root: Path
    name: str
    wsgi: str | None = None
    module_dir: str | None = None
    requirements: str | None = None
    static_dir: str | None = None
    health: str | None = None
    secrets: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    instance: bool = False
    migrations: bool = False
    notes: list[str] = field(default_factory=list)


def _python_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith(".") for p in parts[:-1]):
            continue
        if (
            parts[0] in ("tests", "test", "docs")
            or path.name.startswith("test_")
            or path.name == "conftest.py"
        ):
            continue
        files.append(path)
    return files


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
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


def _env_names(tree: ast.AST) -> set[str]:
    """Names read with os.environ[...], os.environ.get(...) or os.getenv(...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        key: ast.AST | None = None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
        ):
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            if (
                func.attr == "get" and isinstance(func.value, ast.Attribute) and func.value.attr == "environ"
            ) or (func.attr == "getenv"):
                key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def _routes(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr
            in (
                "route",
                "get",
                "post",
                "put",
                "delete",
                "patch",
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
    return out


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "app-" + slug if slug else "app"
    return slug[:32].rstrip("-")


def inspect_project(root: Path) -> Project:
    """Find the WSGI entry point, requirements, static folder, health route and secrets."""
    root = root.resolve()
    project = Project(root=root, name=_slug(root.name))
    factories: list[tuple[int, str, Path]] = []
    apps: list[tuple[int, str, Path]] = []
    env_names: set[str] = set()
    routes: set[str] = set()
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            project.notes.append(f"skipped {path.relative_to(root)}: it does not parse")
            continue
        module = _module_name(root, path)
        depth = module.count(".")
        env_names |= _env_names(tree)
        routes |= _routes(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in ("create_app", "make_app", "app_factory"):
                factories.append((depth, f"{module}:{node.name}()", path))
            if isinstance(node, ast.Assign) and _is_flask_call(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        apps.append((depth, f"{module}:{target.id}", path))
        for any_node in ast.walk(tree):
            if isinstance(any_node, ast.keyword) and any_node.arg == "instance_relative_config":
                project.instance = True
            if isinstance(any_node, ast.ImportFrom) and any_node.module == "flask_migrate":
                project.migrations = True
    chosen = sorted(factories)[0] if factories else (sorted(apps)[0] if apps else None)
    if chosen:
        _, project.wsgi, path = chosen
        module_dir = path.parent
        project.module_dir = str(module_dir.relative_to(root)) if module_dir != root else ""
        static = module_dir / "static"
        if static.is_dir():
            project.static_dir = str(static.relative_to(root))
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
    health = next((p for p in HEALTH_PATHS if p in routes), None)
    project.health = health
    if health is None:
        project.notes.append(
            "no /health route found: add one that returns 200, deploy's health gate probes it"
        )
    if (root / "instance").is_dir():
        project.instance = True
    project.secrets = sorted(n for n in env_names if SECRET_NAME.search(n))
    project.env = sorted(
        n for n in env_names if not SECRET_NAME.search(n) and n not in ("FLASK_DEBUG", "FLASK_ENV")
    )
    if project.secrets:
        names = ", ".join(project.secrets)
        project.notes.append(
            f"secrets read from the environment: {names} (values go in .env, never deploy.yaml)"
        )
    if project.migrations:
        project.notes.append("Flask-Migrate found: 'flask db upgrade' runs once per push, before the switch")
    return project


def write_deploy_yaml(project: Project, domain: str | None = None, hosts: list[str] | None = None) -> str:
    """A commented deploy.yaml for `project` (validated by the caller's next load)."""
    module = (project.wsgi or "app:app").split(":")[0]
    secrets = ", ".join(project.secrets) if project.secrets else "SECRET_KEY"
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
        rows.append(
            (f"  static: {{url: /static, dir: {project.static_dir}}}", "served by Nginx, cached for a year")
        )
    rows += [
        (f"  health: {project.health or '/health'}", "must answer 200 before a release takes traffic"),
        ("  env: {LOG_LEVEL: info}", "plain settings; never secrets here"),
        (f"  secrets: [{secrets}]", "names only: values come from the environment or .env"),
    ]
    if project.instance:
        rows.append(("  shared: [instance]", "kept across releases and rollbacks"))
    if project.migrations:
        rows.append((f'  release: ["flask --app {module} db upgrade"]', "once per push, before the switch"))
    rows += [
        ("", ""),
        ("server:", ""),
        (f"  domains: [{domain or project.name + '.example.com'}]", "the first one names the certificate"),
        (
            f"  hosts: [{', '.join(hosts) if hosts else 'web1.example.com'}]",
            "'host', 'user@host' or 'user@host:port'",
        ),
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
    width = max(len(text) for text, _ in rows) + 2
    lines = [
        f"# deploy.yaml for {project.name}, written by 'deploy init'. Every key: 'deploy schema', or",
        "# playbooks/full.yaml in deploy's repository.",
        "# Then: 'deploy config', 'deploy render', 'deploy check'.",
    ]
    lines += [f"{text:<{width}}# {comment}" if comment else text for text, comment in rows]
    return "\n".join(lines) + "\n"
