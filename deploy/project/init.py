"""`deploy init`: find a Flask app in a project statically and write a commented deploy.yaml for it."""

from __future__ import annotations

import ast
import configparser
import json
import posixpath
import re
import subprocess
import tomllib
from pathlib import Path

from deploy.config import folders
from deploy.config.model import Config
from deploy.project import frameworks
from deploy.project.candidates import (
    NOT_PRODUCTION,
    SECRET_NAME,
    Project,
    _Candidate,
    _FlaskCall,
    _import_root,
    _module_file,
    _python_files,
    _routes,
    _scan_module,
    _slug,
)
from deploy.project.entry import (
    _importable,
    _no_entry,
    rank_entry_points,
)
from deploy.project.envreads import (
    _env_names,
    _env_prefixes,
    _signing_keys,
    _subscript_env_names,
    helper_env_names,
)
from deploy.project.init_choices import choose_example_values, choose_health, note_postgres, release_rows
from deploy.project.migrations import plain_alembic
from deploy.project.procfile import read_procfile
from deploy.project.requirements import RequirementsError, pyproject_dependencies
from deploy.project.scan import DATABASE_WRITERS, WritePath, committed_files, scan, written_folder
from deploy.project.scan import Project as ScannedProject


def _choose_entry(
    root: Path,
    project: Project,
    ranked: list[tuple[_Candidate, str | None]],
    factory_notes: dict[str, str],
    flask_calls: list[_FlaskCall],
) -> None:
    """The best-ranked candidate becomes app.wsgi; say why, and what was passed over."""
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
            "src/ layout: the hosts run the app from the release with src/ on PYTHONPATH (its own "
            "distribution's metadata is shipped beside it in src/, not installed), and Flask keeps its "
            "instance folder in src/instance"
        )


def _choose_instance(root: Path, project: Project) -> None:
    """Whether the instance folder is the project's to share."""
    if (root / project.instance_dir).is_dir():
        project.instance = True
    if project.instance_path is not None:
        # Flask only takes an absolute instance_path: the folder is outside the release, nothing to share.
        project.instance = False
        project.notes.append(
            f"Flask(instance_path={project.instance_path}) keeps the instance folder outside the project: "
            "not shared; create it on the hosts (with the config it reads) yourself"
        )


def _choose_settings(
    project: Project, env_names: set[str], required_names: set[str], prefixes: set[str], signing: set[str]
) -> None:
    """Secrets, optional secrets and plain settings from the environment names the code reads."""
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
    project.required_env = [n for n in project.env if n in required_names]
    if project.env:
        project.notes.append(
            f"settings read from the environment: {', '.join(project.env)} (add them to app.env)"
        )
    if project.required_env:
        project.notes.append(
            f"read with no default (os.environ[...]): {', '.join(project.required_env)}: the app fails "
            "where it reads them unless app.env sets them"
        )


#: An environment variable naming the app's database FILE (BUKUSERVER_DB_FILE, SQLITE_PATH); not a
#: DATABASE_PATH, which may name a folder (Gramps' tree).
_DB_FILE_ENV = re.compile(r"(^|_)((DB|DATABASE|SQLITE)_FILE|SQLITE_(DB_)?PATH)$")


def _choose_db_file(root: Path, project: Project) -> None:
    """An app reading its database file's path from the environment keeps it wherever the default
    falls (often the service user's home, hidden by ProtectHome) or nowhere: point the variable into a
    shared data/ folder, so the database survives every push. Not where data/ holds committed files."""
    names = [n for n in project.env if _DB_FILE_ENV.search(n)]
    if not names or project.shared_files or committed_files(root, "data"):
        return
    if "data" not in project.shared_dirs:
        project.shared_dirs.append("data")
    project.db_file_env = {name: f"data/{project.name}.db" for name in names}
    project.env = [n for n in project.env if n not in names]
    project.notes.append(
        f"the app reads its database file from {', '.join(names)}: set to a file in the shared data/ "
        "folder, so the database survives every push"
    )


def _choose_release(root: Path, project: Project) -> None:
    """A release command only where Flask-Migrate finds its folder."""
    needed = project.migrations_dir if project.alembic else f"{project.migrations_dir}/env.py"
    if project.migrations and not (root / needed).exists():
        # `flask db upgrade` reads the folder Migrate names, from the release's root: without it there,
        # the release command would fail every push.
        project.migrations = False
        project.notes.append(
            f"Flask-Migrate found, but no {project.migrations_dir}/ folder with an env.py at the project "
            "root (where 'flask db upgrade' looks): no release command proposed; if the app migrates "
            "elsewhere, add app.release with 'db upgrade --directory <folder>'"
        )
    if not project.migrations and plain_alembic(root):
        project.plain_alembic = True
        project.notes.append(
            "Alembic found (alembic.ini): 'python -m alembic upgrade head' runs once per push, before the "
            "switch (python -m puts the release on sys.path, where an env.py importing the app finds it)"
        )
    if project.migrations:
        project.cli_script = _flask_group_script(root)
        runner = f"'{project.cli_script}'" if project.cli_script else "'flask'"
        project.notes.append(
            f"{'Flask-Alembic' if project.alembic else 'Flask-Migrate'} found: {runner[:-1]} db upgrade' "
            "runs once per push, before the switch"
            + (
                f" ({project.cli_script} is the project's own Flask command group)"
                if project.cli_script
                else ""
            )
        )


def _console_scripts(root: Path) -> dict[str, str]:
    """The project's console scripts (name -> 'module:function'): pyproject's [project.scripts],
    setup.cfg's [options.entry_points], setup.py's setup(entry_points=...)."""
    found: dict[str, str] = {}
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        found |= {str(k): str(v) for k, v in pyproject.get("project", {}).get("scripts", {}).items()}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        pass
    texts: list[str] = []
    cfg = configparser.ConfigParser()
    try:
        cfg.read_string((root / "setup.cfg").read_text(encoding="utf-8"))
        texts.append(cfg.get("options.entry_points", "console_scripts", fallback=""))
    except (OSError, configparser.Error, UnicodeDecodeError):
        pass
    try:
        setup = ast.parse((root / "setup.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        setup = ast.Module(body=[], type_ignores=[])
    for call in (n for n in ast.walk(setup) if isinstance(n, ast.Call)):
        for keyword in (k for k in call.keywords if k.arg == "entry_points"):
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                section = (
                    value.value.split("[console_scripts]", 1)[-1]
                    if "[console_scripts]" in value.value
                    else ""
                )
                texts.append(section.split("[", 1)[0])
            elif isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "console_scripts":
                        texts += [
                            e.value
                            for e in ast.walk(item)
                            if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        ]
    for text in texts:
        for line in text.splitlines():
            name, _, target = line.partition("=")
            if target.strip() and name.strip():
                found.setdefault(name.strip(), target.strip())
    return found


def _is_flask_group(root: Path, module: str, name: str, depth: int = 0) -> bool:
    """Whether `module.name` is a FlaskGroup: `name = FlaskGroup(...)`, or a function decorated with
    `@click.group(cls=FlaskGroup)` (or a class of the module deriving from FlaskGroup); followed through
    one `from .x import name` re-export."""
    path = _module_file(root, module)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8")) if path else None
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        tree = None
    if tree is None or depth > 2:
        return False
    groups = {"FlaskGroup"} | {
        c.name
        for c in tree.body
        if isinstance(c, ast.ClassDef) and any(ast.unparse(b).endswith("FlaskGroup") for b in c.bases)
    }
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return any(
                isinstance(d, ast.Call)
                and any(k.arg == "cls" and ast.unparse(k.value).split(".")[-1] in groups for k in d.keywords)
                for d in node.decorator_list
            )
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return isinstance(node.value, ast.Call) and ast.unparse(node.value.func).split(".")[-1] in groups
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            package = module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            source = (
                ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module or ""
            )
            return _is_flask_group(root, source, original, depth + 1)
    return False


def _flask_group_script(root: Path) -> str | None:
    """The project's console script that is a Flask command group (it builds the app itself), if any."""
    for script, target in sorted(_console_scripts(root).items()):
        module, _, attr = target.partition(":")
        if attr and _is_flask_group(root, module.strip(), attr.strip().split(".")[0]):
            return script
    return None


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
        _choose_entry(root, project, ranked, factory_notes, flask_calls)
    _find_requirements(root, project)
    _choose_instance(root, project)
    scanned = scan(root)
    choose_health(project, scanned, routes)
    writes = scanned.writes
    _choose_stack(project, scanned)
    project.shared_files = _root_files_written(root, writes)
    _choose_runtime_folders(
        root, project, [w for w in writes if folders.normalized(w.path) not in project.shared_files]
    )
    env_names |= helper_env_names([tree for _, tree in modules])
    _choose_settings(project, env_names, required_names, prefixes, signing)
    choose_example_values(root, project, required_names)
    note_postgres(project, scanned)
    _choose_db_file(root, project)
    _choose_release(root, project)
    _read_procfile(root, project)
    if not project.processes:  # the processes init writes (a Procfile's win), and the folders they write
        project.shared_dirs += [d for d in project.stack.shared if d not in project.shared_dirs]
    return project


def _read_procfile(root: Path, project: Project) -> None:
    """A Procfile's lines besides web are processes (its web line is evidence for the entry point
    ranking, which weighs it against what each module does when imported)."""
    procfile = read_procfile(root)
    if procfile is None:
        return
    if project.wsgi is None and procfile.wsgi:
        project.notes.append(f"app.wsgi from the Procfile's web line: {procfile.wsgi}")
        project.wsgi = procfile.wsgi
    project.processes.update(procfile.processes)
    project.notes += procfile.notes


def _choose_runtime_folders(root: Path, project: Project, writes: list[WritePath]) -> None:
    """The folders of the release the production code writes (os.makedirs('logs'), WHOOSHEE_DIR,
    an upload folder), resolved as PIT006 resolves them: app.shared, so they survive a push and are
    writable under ProtectSystem=strict. Never a folder holding committed files (the shared folder would
    hide them) or code, nor one only known by name (joined to a folder that cannot be resolved)."""
    found: set[str] = set()
    for w in writes:
        folder = written_folder(w) if w.production and w.base in ("relative", "instance") else None
        if folder is None:
            continue
        folder = folders.normalized(folder)
        if folder in (".", project.instance_dir, "instance"):
            if project.instance_path is None and folder == project.instance_dir:
                project.instance = True
            continue
        found.add(folder)
    # The outermost folder covers what lies in it; one holding committed files cannot be shared, but the
    # folders written inside it can (a package writing its database beside its code and logs/ below it).
    committed = {f: next(iter(committed_files(root, f)), None) for f in found}
    free = {f for f in found if committed[f] is None}
    for folder in sorted(
        f for f in found - free if not any(folders.contains(o, f) for o in found - free - {f})
    ):
        project.notes.append(
            f"the app writes into {folder}/, which holds committed files ({committed[folder]}): not shared "
            "(a shared folder would hide them); write the runtime files to a folder of their own"
        )
    outer = sorted(f for f in free if not any(folders.contains(o, f) for o in free if o != f))
    refused = {i for i, _ in folders.shared_by_name(outer, project.wsgi or "app:app")}
    refused |= {i for i, _ in folders.shared_by_contents(outer, root)}
    project.shared_dirs += [folder for index, folder in enumerate(outer) if index not in refused]
    if project.shared_dirs:
        project.notes.append(
            f"the app writes {', '.join(project.shared_dirs)} at runtime: shared, so they survive a push"
        )


def _root_files_written(root: Path, writes: list[WritePath]) -> list[str]:
    """SQLite files the production code writes at the project root (`sqlite3.connect('app.db')`,
    `sqlite:///app.db` from the working folder or from a root module's folder) or beside committed files
    (`sqlite:///{dirname(__file__)}/app.db` in a package): lost on every push unless shared, and a
    folder holding committed files cannot be. Never a file committed in git (a shared copy would
    replace it)."""
    found: list[str] = []
    for w in writes:
        in_release = w.base == "relative" or (w.base == "project" and "/" not in w.file)
        path = folders.normalized(w.path)
        if not (w.production and w.what in DATABASE_WRITERS and in_release) or path == ".":
            continue
        parent = posixpath.dirname(path)
        if not parent or (w.base == "relative" and next(iter(committed_files(root, parent)), None)):
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


def _choose_stack(project: Project, scanned: ScannedProject) -> None:
    """ASGI or Flask-SocketIO workers, and the processes beside web (Celery, RQ, APScheduler)."""
    project.stack = frameworks.detect(scanned)
    project.gunicorn = frameworks.gunicorn_settings(project.stack, scanned)
    if project.wsgi is None and project.stack.asgi_entry is not None:
        project.wsgi, project.no_entry = project.stack.asgi_entry, None
    project.notes += project.stack.notes


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
        lock = root / "poetry.lock"
        try:
            pyproject_dependencies(
                "pyproject.toml",
                (root / "pyproject.toml").read_bytes(),
                lock.read_bytes() if lock.is_file() else None,
            )
        except (OSError, RequirementsError) as exc:  # push would stop on it: say so now
            project.requirements = None
            project.notes.append(f"no requirements file deploy can install: {exc}")
            return
        project.notes.append(
            "dependencies come from pyproject.toml"
            + ("'s [tool.poetry.dependencies], pinned to poetry.lock" if lock.is_file() else "")
            + "; a pinned requirements.txt of every package deploys more reproducibly"
        )


def _quoted(values: list[str]) -> str:
    """YAML double-quoted strings (a JSON string is one), so no value can change the structure."""
    return ", ".join(json.dumps(v) for v in values)


_AUTO_WORKERS = "auto = 2 x the host's cores + 1"


def _server_rows(project: Project, domain: str | None, hosts: list[str] | None) -> list[tuple[str, str]]:
    """The server, gunicorn, nginx and environments sections of the written deploy.yaml."""
    return [
        ("", ""),
        ("server:", ""),
        (
            f"  domains: [{_quoted([domain or project.name + '.example.com'])}]",
            "the first one names the certificate",
        ),
        (f"  hosts: [{_quoted(hosts or ['web1.example.com'])}]", "'host', 'user@host' or 'user@host:port'"),
        (f"  user: {project.name}", "the app runs as this system user, never root"),
        (
            ("  tls: {cert: certs/site.pem, key: certs/site.key}", "a wildcard needs your own certificate")
            if domain and domain.startswith("*.")
            else ("  tls: {email: ops@example.com}", "Let's Encrypt; or {cert: ..., key: ...}, or false")
        ),
        ("", ""),
        (
            ("gunicorn: " + project.gunicorn[0], project.gunicorn[1])
            if project.gunicorn
            else ("gunicorn: {workers: auto, worker_class: sync, timeout: 30}", _AUTO_WORKERS)
        ),
        ("nginx: {client_max_body_size: 16m}", "keep >= the app's MAX_CONTENT_LENGTH"),
        ("", ""),
        ("environments:", "overlays: deploy push -e staging"),
        ("  staging:", ""),
        ("    server: {hosts: [staging1.example.com]}", ""),
    ]


def write_deploy_yaml(project: Project, domain: str | None = None, hosts: list[str] | None = None) -> str:
    """A commented deploy.yaml for `project` (validated by the caller's next load)."""
    module = (project.wsgi or "app:app").split(":")[0]
    secrets = ", ".join(project.secrets)
    env = {**project.db_file_env, **project.example_env}
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
        (
            "  env: {"
            + ", ".join(["LOG_LEVEL: info", *(f"{k}: {json.dumps(v)}" for k, v in env.items())])
            + "}",
            "plain settings; never secrets here",
        ),
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
    if project.required_env:
        rows.append(
            (f"  # with no default, so the app fails without them: {', '.join(project.required_env)}", "")
        )
    shared = ([project.instance_dir] if project.instance else []) + project.shared_dirs
    if shared:
        rows.append((f"  shared: [{_quoted(shared)}]", "kept across releases and rollbacks"))
    if project.shared_files:
        rows.append((f"  shared_files: [{_quoted(project.shared_files)}]", "files the app writes, kept too"))
    rows += release_rows(project, module)
    rows += _server_rows(project, domain, hosts)
    if project.processes:
        # The project's own Procfile says what runs beside web: it wins over what init recognises.
        procfile = frameworks.Stack(
            processes=[frameworks.procfile_process(name, cmd) for name, cmd in project.processes.items()]
        )
        rows += frameworks.process_rows(
            procfile, header="besides web, from the Procfile; each moves with every push"
        )
    else:
        rows += frameworks.process_rows(project.stack, live="processes" in Config.model_fields)
        rows += frameworks.service_rows(project.stack, project.secrets)
    # Comment-only rows (no comment column of their own) do not push the column out.
    width = max(len(text) for text, comment in rows if comment) + 2
    lines = [
        f"# deploy.yaml for {project.name}, written by 'deploy init'. Every key: 'deploy schema', or",
        "# playbooks/full.yaml in deploy's repository.",
        "# Then: 'deploy config', 'deploy render', 'deploy check'.",
    ]
    lines += [f"{text:<{width}}# {comment}" if comment else text for text, comment in rows]
    return "\n".join(lines) + "\n"
