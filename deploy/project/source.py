"""The parsed sources and the shapes the scan reports about them: modules, routes, request vocabulary."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

RequestPart = Literal["form", "args", "json", "values", "data", "files", "cookies"]
_REQUEST_ATTRS: dict[str, RequestPart] = {
    "form": "form",
    "args": "args",
    "json": "json",
    "get_json": "json",
    "values": "values",
    "data": "data",
    "get_data": "data",
    "files": "files",
    "cookies": "cookies",
}
_VALIDATING_CALLS = frozenset(
    {
        "validate_on_submit",
        "validate",
        "load",
        "loads",
        "model_validate",
        "model_validate_json",
        "parse_obj",
        "parse_raw",
        "parse_args",
        "is_valid",
        "full_clean",
        "check_schema",
    }
)
_VALIDATING_DECORATORS = frozenset(
    {"use_args", "use_kwargs", "input", "expects_json", "validate", "arguments", "body", "doc"}
)
_ROUTE_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE"}


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for attribute chains and names; '' for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):
        inner = _dotted(node.func)
        if inner:
            parts.append(inner + "()")
            return ".".join(reversed(parts))
    return ""


@dataclass(frozen=True)
class Route:
    """A view function and the URL rule(s) it serves."""

    rule: str
    methods: tuple[str, ...]
    function: str
    file: str
    line: int
    reads: frozenset[str]
    validates: bool
    uses_form_class: bool
    csrf_exempt: bool
    #: Names of the functions the view calls, and of those it hands request data to (to credit a
    #: helper that validates the request for it).
    calls: frozenset[str] = frozenset()
    handed: frozenset[str] = frozenset()
    #: The app, blueprint or Api object the rule is registered on (its last name part), "" when unknown.
    owner: str = ""

    @property
    def changes_state(self) -> bool:
        return any(m in ("POST", "PUT", "PATCH", "DELETE") for m in self.methods)


@dataclass
class PythonFile:
    """One parsed module and what the scan found in it."""

    path: str
    text: str
    tree: ast.Module | None
    syntax_error: str | None = None

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()
