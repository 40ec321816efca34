"""The app's real URL rules: decorator routes with their blueprint's prefix, plus routes added by calls.

Decorators (`@bp.get("/x")`) are found by the project scan. This adds what a decorator scan misses:

- `<app or blueprint>.add_url_rule("/x", view_func=...)`;
- flask-restful / flask-restx `Api(bp).add_resource(Resource, "/x", "/y")`;
- a project helper that passes one of its parameters as the rule to either
  (`def register(resource, url): bp.add_url_rule(url, view_func=resource)` then `register(R, "/x")`);
- the blueprint's `url_prefix` (from `Blueprint(..., url_prefix=...)`, overridden by
  `register_blueprint(bp, url_prefix=...)`), resolved when it is a literal or a module-level string constant;
  FastAPI's `APIRouter(prefix=...)` and `include_router(router, prefix=...)` the same way, and the prefix of
  the blueprint or router that registers another one (nested blueprints, a router of routers) before it.

Names are matched by their last part (`self.bp` is `bp`); a prefix that is ambiguous or computed is left out.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from deploy.project.source import (
    _REQUEST_ATTRS,
    _ROUTE_METHODS,
    _VALIDATING_CALLS,
    _VALIDATING_DECORATORS,
    PythonFile,
    Route,
    _dotted,
)

_VERBS = tuple(_ROUTE_METHODS)


def _leaf(node: ast.AST) -> str:
    return _dotted(node).rsplit(".", 1)[-1]


def _string(node: ast.AST | None, constants: dict[str, set[str]]) -> str | None:
    """A literal string, or a module-level string constant with one value in the project."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        values = constants.get(_leaf(node), set())
        return next(iter(values)) if len(values) == 1 else None
    return None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _join(prefix: str, rule: str) -> str:
    if not prefix or prefix == "/":
        return rule
    return "/".join((prefix.rstrip("/"), rule.lstrip("/"))) if rule else prefix


@dataclasses.dataclass
class _Scan:
    constants: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = dataclasses.field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = dataclasses.field(default_factory=dict)
    #: blueprint variable -> url_prefix values given to Blueprint(...) / register_blueprint(...)
    #: (file, blueprint variable) -> the url_prefix given to Blueprint(...) (None: not known)
    declared: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)
    #: "bp" or "auth.bp" -> the url_prefix values given to register_blueprint(...)
    registered: dict[str, set[str | None]] = dataclasses.field(default_factory=dict)
    #: (file, Api variable) -> (the app or blueprint it wraps, its own prefix)
    #: "bp" or "auth.bp" -> (the variable that registers it, the file it does so in)
    parents: dict[str, set[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    apis: dict[tuple[str, str], tuple[str, str]] = dataclasses.field(default_factory=dict)


def _scan(modules: Iterable[PythonFile]) -> _Scan:
    scan = _Scan()
    trees = [m.tree for m in modules if m.tree is not None]
    for tree in trees:
        for stmt in tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                for t in stmt.targets:
                    if isinstance(t, ast.Name):
                        scan.constants.setdefault(t.id, set()).add(stmt.value.value)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                scan.classes.setdefault(node.name, node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                scan.functions.setdefault(node.name, node)
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1:
                var, call = _leaf(node.targets[0]), node.value
                kind = _leaf(call.func)
                if kind in ("Blueprint", "APIRouter"):
                    prefix = _keyword(call, "url_prefix" if kind == "Blueprint" else "prefix")
                    value = _string(prefix, scan.constants) if prefix is not None else ""
                    scan.declared[(module.path, var)] = value
                elif kind == "Api" and call.args:
                    prefix = _keyword(call, "prefix")
                    own = _string(prefix, scan.constants) if prefix is not None else ""
                    scan.apis[(module.path, var)] = (_leaf(call.args[0]), own or "")
            registers = _leaf(node.func) if isinstance(node, ast.Call) else ""
            if (
                isinstance(node, ast.Call)
                and registers in ("register_blueprint", "include_router")
                and node.args
            ):
                prefix = _keyword(node, "url_prefix" if registers == "register_blueprint" else "prefix")
                target = node.args[0]
                if _leaf(target) == "blueprint" and isinstance(target, ast.Attribute):
                    target = target.value  # Api(...).blueprint
                name = ".".join(_dotted(target).split(".")[-2:])
                if prefix is not None:
                    scan.registered.setdefault(name, set()).add(_string(prefix, scan.constants))
                if isinstance(node.func, ast.Attribute):
                    scan.parents.setdefault(name, set()).add((_leaf(node.func.value), module.path))
    return scan


def _prefix(owner: str, file: str, scan: _Scan, depth: int = 0) -> str:
    """The URL prefix of the rules registered on `owner` in `file` ("" when none or not known), the prefix
    of the blueprint or router that registers it joined before its own."""
    own = ""
    if (file, owner) in scan.apis:
        owner, own = scan.apis[(file, owner)]
    declared_in = [f for f, v in scan.declared if v == owner]
    if file not in declared_in and len(declared_in) == 1:
        file = declared_in[0]  # imported from the one module that declares a blueprint of that name
    stem = PurePosixPath(file).stem
    module = PurePosixPath(file).parent.name if stem == "__init__" else stem
    key = f"{module}.{owner}"
    if key not in scan.registered and key not in scan.parents and declared_in == [file]:
        key = owner  # the only blueprint of that name
    registered = scan.registered.get(key)
    if registered is not None:
        value = next(iter(registered)) if len(registered) == 1 else None
    else:
        value = scan.declared.get((file, owner), "")
    parents = scan.parents.get(key, set())
    if len(parents) == 1 and value is not None and depth < 8:
        (parent, parent_file), *_ = parents
        value = _join(_prefix(parent, parent_file, scan, depth + 1), value)
    return _join(value or "", own) if own else value or ""


def _reads(node: ast.AST) -> tuple[frozenset[str], bool, bool]:
    """Request data read, whether it is validated, and whether a form class is used, in a view's body."""
    reads: set[str] = set()
    validates = uses_form = False
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in child.decorator_list:
                leaf = _leaf(decorator.func if isinstance(decorator, ast.Call) else decorator)
                # @expects_json(...), @use_args(...), @validate_openapi_request("op"), ...
                validates |= leaf in _VALIDATING_DECORATORS or leaf.startswith("validate")
        if isinstance(child, ast.Attribute) and _dotted(child.value) in ("request", "flask.request"):
            part = _REQUEST_ATTRS.get(child.attr)
            if part:
                reads.add(part)
        if isinstance(child, ast.Call):
            leaf = _leaf(child.func)
            if leaf in _VALIDATING_CALLS or leaf.endswith("Schema"):
                validates = True
            if leaf.endswith("Form"):
                uses_form = True
    return frozenset(reads), validates, uses_form


def _view(name: str, scan: _Scan, methods: tuple[str, ...] | None) -> tuple[tuple[str, ...], ast.AST | None]:
    """The methods a view (function or Resource/MethodView class) answers, and its body."""
    cls = scan.classes.get(name)
    if cls is not None:
        verbs = tuple(
            _ROUTE_METHODS[s.name]
            for s in cls.body
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name in _VERBS
        )
        return methods or verbs or ("GET",), cls
    return methods or ("GET",), scan.functions.get(name)


def _call_routes(
    file: str, call: ast.Call, owner: str, rules: list[str], view: str, scan: _Scan
) -> Iterator[tuple[str, Route]]:
    methods_node = _keyword(call, "methods")
    methods: tuple[str, ...] | None = None
    if isinstance(methods_node, ast.List | ast.Tuple | ast.Set):
        found = [
            e.value.upper()
            for e in methods_node.elts
            if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
        methods = tuple(found) or None
    verbs, body = _view(view, scan, methods)
    reads, validates, uses_form = _reads(body) if body is not None else (frozenset(), False, False)
    for rule in rules:
        yield (
            owner,
            Route(
                rule, verbs, view or "?", file, call.lineno, reads, validates, uses_form, False, owner=owner
            ),
        )


def _rules_and_view(call: ast.Call, scan: _Scan, args: list[ast.AST]) -> tuple[list[str], str]:
    leaf = _leaf(call.func)
    if leaf == "add_url_rule":
        rule = _string(args[0], scan.constants) if args else _string(_keyword(call, "rule"), scan.constants)
        view = _keyword(call, "view_func")
        if view is None and len(args) > 2:
            view = args[2]
        return ([rule] if rule is not None else []), _view_name(view)
    rules = [r for r in (_string(a, scan.constants) for a in args[1:]) if r is not None]
    return rules, _leaf(args[0]) if args else ""


@dataclasses.dataclass(frozen=True)
class _Helper:
    """A project function that registers a view with a rule it is given."""

    file: str
    params: tuple[str, ...]
    call: ast.Call  # the add_url_rule / add_resource inside it
    rule: str  # the parameter holding the rule (or, when `many`, the rules)
    many: bool
    owner: str  # the object registered on, or the parameter holding it


def _helper(module: PythonFile, node: ast.FunctionDef | ast.AsyncFunctionDef) -> _Helper | None:
    params = tuple(a.arg for a in node.args.args)
    loops = {
        n.target.id: n.iter.id
        for n in ast.walk(node)
        if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and isinstance(n.iter, ast.Name)
    }
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and _leaf(call.func) in ("add_url_rule", "add_resource"):
            at = 0 if _leaf(call.func) == "add_url_rule" else 1
            arg = call.args[at] if len(call.args) > at else None
            if not isinstance(arg, ast.Name):
                continue
            many = arg.id not in params and loops.get(arg.id) in params
            if arg.id in params or many:
                rule = loops[arg.id] if many else arg.id
                return _Helper(module.path, params, call, rule, many, _owner(call))
    return None


def _argument(call: ast.Call, helper: _Helper, param: str) -> ast.AST | None:
    index = helper.params.index(param) if param in helper.params else -1
    if 0 <= index < len(call.args):
        return call.args[index]
    return _keyword(call, param)


def _view_name(view: ast.AST | None) -> str:
    if isinstance(view, ast.Call) and _leaf(view.func) == "as_view" and isinstance(view.func, ast.Attribute):
        return _leaf(view.func.value)
    return _leaf(view.func if isinstance(view, ast.Call) else view) if view is not None else ""


def _helper_routes(
    file: str, node: ast.Call, helper: _Helper, scan: _Scan
) -> Iterator[tuple[str, str, Route]]:
    given = _argument(node, helper, helper.rule)
    items = given.elts if helper.many and isinstance(given, ast.List | ast.Tuple) else [given]
    rules = [r for r in (_string(i, scan.constants) for i in items if i is not None) if r is not None]
    if not rules:
        return
    owner, owner_file = helper.owner, helper.file
    if owner in helper.params:  # register_view(bp, ...): the caller names the blueprint
        owner, owner_file = _leaf(_argument(node, helper, owner) or ast.Constant("")), file
    inner_view = _keyword(helper.call, "view_func")
    if inner_view is None and _leaf(helper.call.func) == "add_resource" and helper.call.args:
        inner_view = helper.call.args[0]
    if isinstance(inner_view, ast.Name) and inner_view.id in helper.params:
        view = _view_name(_argument(node, helper, inner_view.id))
    else:
        view = _view_name(node.args[0]) if node.args else ""
    for own, route in _call_routes(file, helper.call, owner, rules, view, scan):
        yield own, owner_file, dataclasses.replace(route, line=node.lineno)


def discover(modules: list[PythonFile], decorated: list[Route]) -> list[Route]:
    """Every route of the project, prefixed with its blueprint's url_prefix when that is known."""
    scan = _scan(modules)
    #: (owner, the file the owner is named in, route)
    found: list[tuple[str, str, Route]] = [(r.owner, r.file, r) for r in decorated]
    helpers: dict[str, _Helper] = {}
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                helper = _helper(module, node)
                if helper is not None:
                    helpers[node.name] = helper
    inner_calls = {id(h.call) for h in helpers.values()}
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call) or id(node) in inner_calls:
                continue
            leaf = _leaf(node.func)
            if leaf in ("add_url_rule", "add_resource") and isinstance(node.func, ast.Attribute):
                rules, view = _rules_and_view(node, scan, list(node.args))
                found += [
                    (own, module.path, route)
                    for own, route in _call_routes(module.path, node, _owner(node), rules, view, scan)
                ]
            elif leaf in helpers:
                found += _helper_routes(module.path, node, helpers[leaf], scan)
    return [
        dataclasses.replace(r, rule=_join(_prefix(owner, file, scan), r.rule)) if owner else r
        for owner, file, r in found
    ]


def _owner(call: ast.Call) -> str:
    return _leaf(call.func.value) if isinstance(call.func, ast.Attribute) else ""
