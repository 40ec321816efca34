"""Views and helpers, as the module pass (deploy.project.visitor) meets each function: the routes a view
declares, what it reads from the request and whether it checks it; which helpers check what they read
or are handed."""

from __future__ import annotations

import ast

from deploy.project.facts import _Facts
from deploy.project.source import (
    _REQUEST_ATTRS,
    _ROUTE_METHODS,
    _VALIDATING_CALLS,
    _VALIDATING_DECORATORS,
    Route,
    _dotted,
)
from deploy.project.validation import (
    _carries,
    _helper_name,
    _reads_request,
    _rejects_bad_parameters,
    _request_names,
    _validates_by_hand,
)
from deploy.project.values import evaluate


def note_helper(facts: _Facts, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """A function that is not a view: note whether it validates the request or the data it is handed."""
    positional = [*node.args.posonlyargs, *node.args.args]
    # The data a helper is handed has no default; `return_id=False` is an option, not the data.
    required = positional[: len(positional) - len(node.args.defaults)]
    required += [a for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d is None]
    parameters = {a.arg for a in required}
    if _reads_request(node) and _validates_by_hand(node):
        facts.checking.add(node.name)
    if _rejects_bad_parameters(node, parameters - {"self", "cls"}):
        facts.checking_parameters.add(node.name)


def note_route(facts: _Facts, path: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """A function's routes (its route decorators), what each reads from the request and how it checks it;
    a function without one is noted as a helper (`note_helper`)."""
    rules: list[tuple[str, tuple[str, ...], str]] = []
    validates = False
    exempt = False
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        name = _dotted(call.func if call else decorator)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "exempt":
            exempt = True
        if leaf in _VALIDATING_DECORATORS and leaf not in ("route",):
            validates = True
        if call is None or "." not in name:
            continue
        if leaf == "route" or leaf in _ROUTE_METHODS:
            rule = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else "?"
            methods: tuple[str, ...] = ("GET",)
            if leaf in _ROUTE_METHODS:
                methods = (_ROUTE_METHODS[leaf],)
            for k in call.keywords:
                if k.arg == "methods":
                    value = evaluate(k.value)
                    if value.kind == "literal" and isinstance(value.literal, list | tuple | set):
                        methods = tuple(str(m).upper() for m in value.literal)
            rules.append((str(rule), methods, name.rsplit(".", 1)[0].rsplit(".", 1)[-1]))
    if not rules:
        note_helper(facts, node)
        return
    reads: set[str] = set()
    uses_form = False
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and _dotted(child.value) in ("request", "flask.request"):
            part = _REQUEST_ATTRS.get(child.attr)
            if part:
                reads.add(part)
        if isinstance(child, ast.Call):
            leaf = _dotted(child.func).rsplit(".", 1)[-1]
            if leaf in _VALIDATING_CALLS:
                validates = True
            if leaf in facts.form_classes or leaf.endswith(("Form", "_form")) or leaf == "validate_on_submit":
                uses_form = True
            if leaf.endswith("Schema"):
                validates = True
    validates = validates or _validates_by_hand(node)
    held = _request_names(node, set())
    helpers = [c for c in ast.walk(node) if isinstance(c, ast.Call) and _helper_name(c)]
    handed = frozenset(  # functions the view hands request data to
        _helper_name(c)
        for c in helpers
        if any(_carries(a, held) for a in [*c.args, *(k.value for k in c.keywords)])
    )
    for rule, methods, owner in rules:
        facts.routes.append(
            Route(
                rule,
                methods,
                node.name,
                path,
                node.lineno,
                frozenset(reads),
                validates,
                uses_form,
                exempt,
                frozenset(_helper_name(c) for c in helpers),
                handed,
                owner,
            )
        )
