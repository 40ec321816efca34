"""Whether a view or a helper checks what it reads from the request before using it."""

from __future__ import annotations

import ast
import re

from deploy.project.source import (
    _REQUEST_ATTRS,
    _dotted,
)

#: Helpers whose name says they check what they are given (`validate_email(...)`, `check_password`).
_CHECKING_HELPER = re.compile(r"^_?(validate|check|clean|sanitize|sanitise|verify|parse|is_valid|ensure)")


def _helper_name(call: ast.Call) -> str:
    """The name of a function of the project a call may reach: `helper(...)`, `self.helper(...)`;
    '' for methods of other objects (`cfg.get(...)`), whose names say nothing about the project."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute) and _dotted(call.func.value) in ("self", "cls"):
        return call.func.attr
    return ""


def _rejects_bad_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef, parameters: set[str]) -> bool:
    """Whether a helper checks a value it is handed: rejects it (`if "@" not in data["email"]: raise
    ValueError(...)`, abort(), an early return), dispatches it among fixed values (`if op == "delete":`),
    keeps only known keys (`{k: v for k, v in data.items() if k in FIELDS}`), or hands it to a form
    class that validates it (`SettingsForm(formdata=data)`)."""
    if not parameters:
        return False
    tainted = _request_names(function, parameters)
    for child in ast.walk(function):
        if isinstance(child, ast.Assert) and _carries(child.test, tainted):
            return True
        if isinstance(child, ast.If) and _carries(child.test, tainted):
            if _against_constants(child.test):
                return True
            for stmt in child.body:
                for inner in ast.walk(stmt):
                    if isinstance(inner, ast.Raise | ast.Return) or (
                        isinstance(inner, ast.Call) and _dotted(inner.func).rsplit(".", 1)[-1] == "abort"
                    ):
                        return True
        if isinstance(child, ast.comprehension) and any(_carries(test, tainted) for test in child.ifs):
            return True
        if (
            isinstance(child, ast.Call)
            and _dotted(child.func).rsplit(".", 1)[-1].endswith(("Form", "_form"))
            and any(_carries(a, tainted) for a in [*child.args, *(k.value for k in child.keywords)])
        ):
            return True
    return False


def _against_constants(test: ast.AST) -> bool:
    """`x == "delete"`, `x in ("a", "b")`: a comparison with fixed values."""
    return any(
        isinstance(c, ast.Compare)
        and all(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in c.ops)
        and all(
            isinstance(v, ast.Constant)
            or (
                isinstance(v, ast.Tuple | ast.List | ast.Set)
                and all(isinstance(e, ast.Constant) for e in v.elts)
            )
            for v in c.comparators
        )
        for c in ast.walk(test)
    )


def _reads_request(node: ast.AST) -> bool:
    return any(
        isinstance(c, ast.Attribute)
        and c.attr in _REQUEST_ATTRS
        and _dotted(c.value) in ("request", "flask.request")
        for c in ast.walk(node)
    )


def _carries(node: ast.AST, tainted: set[str]) -> bool:
    return _reads_request(node) or any(
        isinstance(c, ast.Name) and isinstance(c.ctx, ast.Load) and c.id in tainted for c in ast.walk(node)
    )


def _request_names(view: ast.FunctionDef | ast.AsyncFunctionDef, seed: set[str]) -> set[str]:
    """The names in a function that hold request data (or a `seed` name), directly or computed from it."""
    tainted = set(seed)
    if not seed and not _reads_request(view):
        return tainted
    flows: list[tuple[list[ast.AST], ast.AST]] = []  # (targets, value) of every assignment and loop
    for child in ast.walk(view):
        if isinstance(child, ast.Assign):
            flows.append((list(child.targets), child.value))
        elif isinstance(child, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and child.value is not None:
            flows.append(([child.target], child.value))
        elif isinstance(child, ast.For):
            flows.append(([child.target], child.iter))
    changed = True
    while changed:  # the names that hold request data, directly or computed from it
        changed = False
        for targets, value in flows:
            if all(isinstance(t, ast.Name) and t.id in tainted for t in targets) or not _carries(
                value, tainted
            ):
                continue
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and name.id not in tainted:
                        tainted.add(name.id)
                        changed = True
    return tainted


def _validates_by_hand(view: ast.FunctionDef | ast.AsyncFunctionDef, seed: set[str] | None = None) -> bool:
    """Whether a function checks the request data it reads (or the `seed` parameters it is handed): a
    condition on the value (`if not name`, `if task in (0, 1)`, `assert`), a conversion inside
    try/except (`int(request.form["n"])`), a typed read (`request.args.get("n", type=int)`) or a helper
    named for checking (`validate_...`)."""
    tainted = _request_names(view, seed or set())

    def carries(node: ast.AST) -> bool:
        return _carries(node, tainted)

    for child in ast.walk(view):
        if isinstance(child, ast.If | ast.IfExp | ast.While | ast.Assert) and carries(child.test):
            return True
        if isinstance(child, ast.comprehension) and any(carries(test) for test in child.ifs):
            return True
        if isinstance(child, ast.Try) and child.handlers and any(carries(stmt) for stmt in child.body):
            return True
        if isinstance(child, ast.Call):
            leaf = _dotted(child.func).rsplit(".", 1)[-1]
            if leaf == "get" and _reads_request(child.func) and any(k.arg == "type" for k in child.keywords):
                return True
            if _CHECKING_HELPER.match(leaf) and any(carries(a) for a in child.args):
                return True
    return False
