"""Small helpers shared by the built-in checks (where things are, what counts as production)."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable, Iterable, Iterator

from deploy.checker import Context, Finding
from deploy.project.evidence import module_name, served_modules, server_targets
from deploy.project.scan import CallSite, Setting


#: Where a finding about deploy.yaml points.
def config_file(ctx: Context) -> str:
    return ctx.config_file or "deploy.yaml"


def app_site(ctx: Context) -> tuple[str | None, int | None]:
    """Where the Flask app is created (the place to point at for app-wide findings)."""
    apps = ctx.project.apps
    if apps:
        return apps[0].file, apps[0].line
    return None, None


def last_setting(ctx: Context, key: str) -> Setting | None:
    """The production assignment of a config key that wins (the last one in source order)."""
    found = ctx.project.setting(key)
    return found[-1] if found else None


def loads_config_from_environment(ctx: Context) -> bool:
    """Whether the app reads its config from outside the code (env prefix, env var file, pyfile)."""
    return bool(ctx.project.calls_named("from_prefixed_env", "from_envvar"))


def unguarded(calls: list[CallSite]) -> list[CallSite]:
    return [c for c in calls if not c.main_guarded]


def is_flask_app(ctx: Context) -> bool:
    return bool(ctx.project.apps) or ctx.project.uses("flask")


def commands(ctx: Context) -> Iterator[tuple[str, int, str]]:
    """(file, line, command) of every process the project starts (Dockerfile CMD, Procfile, units)."""
    for path, instructions in ctx.project.dockerfiles.items():
        for ins in instructions:
            if ins.keyword in ("CMD", "ENTRYPOINT"):
                args = ins.args
                if args.startswith("["):
                    args = " ".join(re.findall(r'"([^"]*)"', args))
                yield path, ins.line, args
    for path, text in ctx.project.glob("Procfile"):
        for number, line in enumerate(text.splitlines(), start=1):
            if ":" in line and not line.lstrip().startswith("#"):
                yield path, number, line.split(":", 1)[1].strip()
    for path, text in ctx.project.glob(".service"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.startswith("ExecStart="):
                yield path, number, line.split("=", 1)[1].lstrip("-@+!")


def script_runs(ctx: Context) -> list[tuple[str, str, str]]:
    """(file that starts it, module run as a script, command) for `python app.py` style commands that
    start the development server (a Flask-Script `manage.py` only with one of its server commands)."""
    runs: dict[str, set[str]] = {}
    for c in ctx.project.calls_named("run"):
        if c.name.count(".") == 1:
            runs.setdefault(c.file, set()).add(c.name.split(".")[0])
    out: list[tuple[str, str, str]] = []
    for path, _line, command in commands(ctx):
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        if words and words[0].rsplit("/", 1)[-1].startswith("python"):
            for at, word in enumerate(words[1:], start=1):
                servers = _manager_servers(ctx, word, runs.get(word, set()))
                rest = [w for w in words[at + 1 :] if not w.startswith("-")]
                if word in runs and (servers is None or (rest[:1] or ["runserver"])[0] in servers):
                    out.append((path, word, command))
    return out


def script_modules(ctx: Context) -> dict[str, dict[str, str]]:
    """{file that starts it: {module run as a script: command}} of `script_runs`."""
    out: dict[str, dict[str, str]] = {}
    for path, module, command in script_runs(ctx):
        out.setdefault(path, {})[module] = command
    return out


def _manager_servers(ctx: Context, path: str, receivers: set[str]) -> set[str] | None:
    """The server commands of a Flask-Script `manage.py` (`manager = Manager(app)` ... `manager.run()`:
    a command line whose subcommands are other code, `runserver` and each `add_command(NAME, Server())`
    the development server); None when a `.run()` of the module is not such a manager's."""
    module = next((m for m in ctx.project.python if m.path == path), None)
    if module is None or module.tree is None or not receivers:
        return None
    managers: set[str] = set()
    servers = {"runserver"}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if _leaf(node.value.func) == "Manager":
                managers.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Call) and _leaf(node.func) == "add_command" and len(node.args) == 2:
            name, command = node.args
            if (
                isinstance(name, ast.Constant)
                and isinstance(command, ast.Call)
                and _leaf(command.func) == "Server"
            ):
                servers.add(str(name.value))
    return servers if receivers <= managers else None


def _leaf(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def wsgi_site(ctx: Context) -> tuple[str | None, int | None]:
    """The module the WSGI target (deploy.yaml app.wsgi, --app) imports, and the line defining its
    object; the config file when the module is not in the project; else the Flask app's site."""
    spec = ctx.wsgi_spec
    if spec:
        module, _, target = spec.partition(":")
        name = (target or "app").split("(", 1)[0].split(".", 1)[0].strip()
        wanted = module.replace(".", "/")
        for m in ctx.project.python:
            if m.path in (f"{wanted}.py", f"{wanted}/__init__.py") or m.path.endswith(
                (f"/{wanted}.py", f"/{wanted}/__init__.py")
            ):
                pattern = re.compile(rf"^(def\s+{re.escape(name)}\b|{re.escape(name)}\s*[:=])")
                line = next((n for n, text in enumerate(m.lines, start=1) if pattern.match(text)), 1)
                return m.path, line
        if ctx.config is not None and not ctx.app_spec:
            return config_file(ctx), None
    return app_site(ctx)


_SERVED: dict[int, tuple[object, set[str] | None]] = {}


def served(ctx: Context) -> set[str] | None:
    """`served_modules` for this context, computed once per scanned project (several checks ask)."""
    key = id(ctx.project)
    if key in _SERVED and _SERVED[key][0] is ctx.project:
        return _SERVED[key][1]
    if len(_SERVED) > 8:
        _SERVED.clear()
    found = _served(ctx)
    _SERVED[key] = (ctx.project, found)
    return found


def _entry_roots(ctx: Context) -> list[str]:
    """Dotted modules the served entry point names: deploy.yaml app.wsgi or --app, else a WSGI server's
    target in a Dockerfile, Procfile or unit."""
    spec = ctx.app_spec or (ctx.config.app.wsgi if ctx.config is not None else None)
    if spec:
        return [spec.partition(":")[0].strip()]
    return server_targets(command for _, _, command in commands(ctx))


def _entry_found(ctx: Context) -> bool:
    """Whether the entry point is a module of the project (not a wrapper the user writes on the host):
    only then can what it never imports be left out."""
    roots = _entry_roots(ctx)
    return bool(roots) and bool(served_modules(ctx.project, roots))


def _served(ctx: Context) -> set[str] | None:
    """Paths of the project modules production imports: the WSGI target's module (deploy.yaml app.wsgi,
    --app, else a WSGI server command in a Dockerfile, Procfile or unit, else the modules that create
    the Flask app) and what they import, transitively. None when no entry point is known."""
    roots = _entry_roots(ctx)
    found = served_modules(ctx.project, roots) if roots else set()
    if not found:
        apps = {c.file for c in ctx.project.apps if not _NOT_SERVED.search("/" + c.file)}
        found = served_modules(ctx.project, [module_name(path) for path in apps])
    return found or None


#: Folders of code that is read or run by hand, never served (used only when no entry point is known).
_NOT_SERVED = re.compile(r"/(examples?|samples?|docs?|scripts|demos?|contrib|tools)/")


def in_served_code(func: Callable[[Context], Iterable[Finding]]) -> Callable[[Context], Iterator[Finding]]:
    """Keep only the findings production reaches: a finding in a Python module that the served entry point
    never imports (a CLI importer, an Alembic migration, a test, a dev script) is dropped, and one on a
    call inside `if __name__ == "__main__":` too. Findings elsewhere
    (templates, deploy.yaml) and every finding when the entry point is unknown are kept."""

    def filtered(ctx: Context) -> Iterator[Finding]:
        production = served(ctx) if _entry_found(ctx) else None
        calls: dict[tuple[str, int], list[CallSite]] | None = None
        for f in func(ctx):
            if production is None or not f.file or not f.file.endswith(".py") or f.line is None:
                if production is None or not (f.file or "").endswith(".py") or f.file in production:
                    yield f
                continue
            if f.file not in production:
                continue
            if calls is None:
                calls = {}
                for c in ctx.project.calls:
                    calls.setdefault((c.file, c.line), []).append(c)
            here = calls.get((f.file, f.line), [])
            if not here or not all(c.main_guarded for c in here):
                yield f

    filtered.__name__ = func.__name__
    filtered.__doc__ = func.__doc__
    filtered.__module__ = func.__module__
    return filtered


#: FastAPI's documentation pages: their default path, name, and what they load (both from a CDN).
_FASTAPI_DOCS = {
    "docs_url": (
        "/docs",
        "Swagger UI",
        "scripts from https://cdn.jsdelivr.net started by an inline <script>",
    ),
    "redoc_url": ("/redoc", "ReDoc", "its script from https://cdn.jsdelivr.net"),
}


def fastapi_docs_blocked(ctx: Context, policy: str) -> Iterator[Finding]:
    """FastAPI's /docs loads Swagger UI from https://cdn.jsdelivr.net and starts it with an inline
    <script>, /redoc loads ReDoc from there: under a policy whose script-src allows neither, the page
    stays blank."""
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.split()}
    sources = directives.get("script-src", directives.get("default-src", []))
    cdn = any(s in ("*", "https:", "https://cdn.jsdelivr.net", "cdn.jsdelivr.net") for s in sources)
    for call in ctx.project.calls_named("FastAPI"):
        for keyword, (default, page, loads) in _FASTAPI_DOCS.items():
            value = call.keywords.get(keyword)
            if value is not None and value.kind == "literal" and value.literal is None:
                continue  # docs_url=None: the page is off
            if cdn and (keyword == "redoc_url" or "'unsafe-inline'" in sources):
                continue
            path = value.literal if value is not None and isinstance(value.literal, str) else default
            yield Finding(
                f"FastAPI serves {path} ({page}) with {loads}, which script-src blocks: the page stays "
                f"blank; pass {keyword}=None in production, or allow it in nginx.csp_sources.script-src",
                call.file,
                call.line,
            )


def services_env(ctx: Context) -> set[str]:
    """The variables `services:` sets for the app (`DATABASE_URL`, `REDIS_URL`, or the `env:` each names)."""
    if ctx.config is None:
        return set()
    services = ctx.config.services
    return {s.env for s in (services.postgres, services.redis) if s is not None}


def _is_debug_flag(test: ast.expr) -> bool:
    """`app.debug`, `settings.DEBUG`, `DEBUG`, `app.config["DEBUG"]`, `app.config.get("DEBUG")`."""
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "get":
        test = ast.Subscript(value=test.func.value, slice=test.args[0]) if test.args else test
    if isinstance(test, ast.Subscript):
        return isinstance(test.slice, ast.Constant) and test.slice.value == "DEBUG"
    return _leaf(test) in ("debug", "DEBUG")


def debug_only(ctx: Context, path: str, line: int) -> bool:
    """Whether line `line` of `path` runs only in debug mode, inside `if app.debug:` (or another debug
    flag): what SEC001 says about the flag itself covers it."""
    module = next((m for m in ctx.project.python if m.path == path), None)
    for node in ast.walk(module.tree) if module is not None and module.tree is not None else []:
        if (
            isinstance(node, ast.If)
            and _is_debug_flag(node.test)
            and node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno)
        ):
            return True
    return False
