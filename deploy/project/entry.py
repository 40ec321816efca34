"""Which candidate is the project's WSGI entry point: how the project is served, what a module does
when imported, and the ranking `deploy init` and `deploy check --import` share."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from deploy.config.loader import ConfigError, read_text
from deploy.project.candidates import (
    Project,
    _call_name,
    _Candidate,
    _FlaskCall,
    _module_file,
    _module_name,
    _procfile_target,
    _python_files,
    _scan_module,
)
from deploy.project.scan import FACTORY_NAMES

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
        # The strongest evidence; among equals, one naming the call init writes (create_app()) before
        # one passing other arguments (create_app(config='config.py')) that it does not write.
        matching = [t for t in targets if t[1].split("(")[0] == name]
        best = min(matching, key=lambda t: (t[0], t[1] != c.wsgi), default=None)
        if best is not None:
            return best[0], f"entry point from {best[2]}: {best[1]}"
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
    not_completing = _building_calls(modules, set(factories))
    views, on_import = _view_modules(root, modules, objects)
    found: dict[str, str] = {}
    for path, tree in modules:
        module = _module_name(root, path)
        imported = {
            alias.asname or alias.name: f"{node.module}:{alias.name}"
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 0
            for alias in node.names
        }
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for owner, fn in _functions(tree):
            if f"{module}:{fn.name}" in wsgis or fn.name in not_completing:
                continue
            targets = [
                *_blueprint_targets(fn, module, imported, factories, objects),
                *(
                    views[name]
                    for name in _local_imports(fn, package)
                    if name in views and name not in on_import
                ),
            ]
            for target in targets:
                if target not in found:
                    where = f"{owner}{fn.name}() in {path.relative_to(root).as_posix()}:{fn.lineno}"
                    server = _own_server(fn)
                    found[target] = where + (
                        f", which serves it with {server} (not a WSGI server)"
                        if server
                        else ", which the project's own CLI runs"
                    )
    # A factory that returns its module's app object (`def create_app(): ...; return app`): that
    # object is the same incomplete app.
    for path, tree in modules:
        module = _module_name(root, path)
        for top in tree.body:
            done = found.get(f"{module}:{top.name}()") if isinstance(top, ast.FunctionDef) else None
            if done is None:
                continue
            for node in ast.walk(top):
                returned = node.value if isinstance(node, ast.Return) else None
                if isinstance(returned, ast.Name) and f"{module}:{returned.id}" in objects:
                    found.setdefault(f"{module}:{returned.id}", done)
    return found


def _blueprint_targets(
    fn: ast.FunctionDef, module: str, imported: dict[str, str], factories: dict[str, str], objects: set[str]
) -> list[str]:
    """The candidates `fn` registers blueprints on: an app it builds with a candidate factory, or a
    candidate object of its module or imported by it (never an app it is given as a parameter)."""
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
    out: list[str] = []
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
        if target is not None:
            out.append(target)
    return out


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module an `from ... import` names, relative imports resolved against `package`."""
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    up = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    return ".".join([*up, *([node.module] if node.module else [])])


def _local_imports(fn: ast.FunctionDef, package: str) -> list[str]:
    """Modules `fn` imports in its body (`from . import views`: the package's `views` too)."""
    out: list[str] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            out += [base, *(f"{base}.{alias.name}" if base else alias.name for alias in node.names)]
    return out


_ROUTE_METHODS = {"route", "add_url_rule", "get", "post", "put", "patch", "delete"}


def _view_modules(
    root: Path, modules: list[tuple[Path, ast.Module]], objects: set[str]
) -> tuple[dict[str, str], set[str]]:
    """({module: candidate}: modules that add routes to a candidate object imported from elsewhere,
    {modules some module imports at its top}): a views module imported only inside a function adds
    its routes only when that function runs."""
    views: dict[str, str] = {}
    on_import: set[str] = set()
    for path, tree in modules:
        module = _module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.Import):
                on_import |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                on_import |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
                names |= {alias.asname or alias.name: f"{base}:{alias.name}" for alias in node.names}
        for call in ast.walk(tree):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in _ROUTE_METHODS
                and isinstance(call.func.value, ast.Name)
                and names.get(call.func.value.id) in objects
            ):
                views.setdefault(module, names[call.func.value.id])
    return views, on_import


def _building_calls(modules: list[tuple[Path, ast.Module]], factories: set[str]) -> set[str]:
    """Names of functions called at the top of a module (routes registered on import), or by a factory
    (given the app or not, they are part of building it): they do not complete an app elsewhere."""
    on_import = {
        _call_name(node.value)[1]
        for _path, tree in modules
        for node in tree.body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    }
    by_factories = {
        _call_name(node)[1]
        for _path, tree in modules
        for _owner, fn in _functions(tree)
        if fn.name in factories
        for node in ast.walk(fn)
        if isinstance(node, ast.Call)
    }
    return on_import | by_factories


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    """The module's functions and its classes' methods, as ('' or 'Class.', function)."""
    out: list[tuple[str, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out.append(("", node))
        elif isinstance(node, ast.ClassDef):
            out += [(f"{node.name}.", fn) for fn in node.body if isinstance(fn, ast.FunctionDef)]
    return out


#: What serves an app without a WSGI server: Tornado's WSGIContainer/IOLoop, an event loop run forever,
#: a server of the standard library or of gevent/eventlet started by the function itself.
_SERVER_MODULES = {"tornado": "Tornado", "twisted": "Twisted", "aiohttp": "aiohttp", "gevent": "gevent"}
_SERVER_CALLS = {
    "IOLoop": "Tornado",
    "WSGIContainer": "Tornado",
    "serve_forever": "its own server loop",
    "run_forever": "its own event loop",
    "make_server": "its own server loop",
}


def _own_server(fn: ast.FunctionDef) -> str | None:
    """Which server the function starts itself (the app is then not served through WSGI), or None."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                label = _SERVER_MODULES.get(name.split(".")[0])
                if label:
                    return label
        leaf = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
        if leaf in _SERVER_CALLS:
            return _SERVER_CALLS[leaf]
    return None


def _no_entry(
    root: Path, completed: dict[str, str], candidates: list[_Candidate], calls: list[_FlaskCall]
) -> str | None:
    """Why no candidate is an importable entry (see _completed_elsewhere), or None when one is."""
    if candidates:
        return None
    if completed:
        wsgi, where = sorted(completed.items())[0]
        return f"{wsgi} gets its routes only from {where}"
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
