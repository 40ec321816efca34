"""Strings built from pieces: SQL statements (what `SqlBuild` records) and templates made from strings."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from deploy.project.source import (
    PythonFile,
    _dotted,
)

_SQL_WORDS = re.compile(
    r"\b(select|insert|update|delete|drop|create|alter|replace)\b.*\b(from|into|set|table|where|values)\b",
    re.I | re.S,
)
_SQL_CALLS = frozenset(
    {"execute", "executemany", "executescript", "text", "raw", "exec_driver_sql", "from_statement"}
)


#: Calls whose result cannot carry text from the request into SQL: numbers, lengths, booleans.
_SQL_SAFE_CALLS = frozenset({"int", "float", "len", "bool", "abs", "round", "range", "count", "id"})
#: Methods whose result still carries the text of the object they are called on.
_PASSING_METHODS = frozenset(
    {
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "title",
        "casefold",
        "capitalize",
        "replace",
        "format",
        "split",
        "get",
        "getlist",
        "pop",
        "decode",
        "encode",
        "removeprefix",
        "removesuffix",
        "join",
        "values",
    }
)
#: Helpers that quote or escape what goes into SQL (`quote_identifier`, `escape_string`).
_QUOTING = re.compile(r"(?i)(quote|escape|sanitize|identifier)")


def _called_leaves(node: ast.AST) -> set[str]:
    return {_dotted(c.func).rsplit(".", 1)[-1] for c in ast.walk(node) if isinstance(c, ast.Call)}


def _whitelisted(function: ast.AST) -> set[str]:
    """Names a function checks against a fixed set (`if col not in COLUMNS`)."""
    return {
        c.left.id
        for c in ast.walk(function)
        if isinstance(c, ast.Compare)
        and isinstance(c.left, ast.Name)
        and all(isinstance(op, ast.In | ast.NotIn) for op in c.ops)
    }


def _constant_text(node: ast.AST) -> str:
    """The string constants in an expression, joined (what SQL keywords it spells)."""
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _string_build(node: ast.AST) -> str | None:
    """How a string expression is built from pieces ('f-string', '%', '+', '.format()'), if it is."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
        text = "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
        return "an f-string" if _SQL_WORDS.search(text) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        text = " ".join(
            n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        )
        if _SQL_WORDS.search(text) and not all(isinstance(n, ast.Constant) for n in (node.left, node.right)):
            return "'%' formatting" if isinstance(node.op, ast.Mod) else "string concatenation"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and _SQL_WORDS.search(node.func.value.value)
    ):
        return "str.format()"
    return None


# --- templates written in the source ------------------------------------------------------------

#: Calls whose first argument is a Jinja template given as a string.
_STRING_TEMPLATE_CALLS = frozenset({"render_template_string", "stream_template_string", "from_string"})


@dataclass(frozen=True)
class InlineTemplate:
    """An HTML template written as a string literal in the source and rendered as a page."""

    file: str
    #: The line the string starts on (its first line of text is on this line).
    line: int
    text: str


def inline_templates(modules: list[PythonFile]) -> list[InlineTemplate]:
    """Templates given to `render_template_string()` (or `from_string()`) as a literal, or as a name
    assigned a literal in the same module."""
    out: list[InlineTemplate] = []
    for module in modules:
        if module.tree is None or not ("_string" in module.text or "from_string" in module.text):
            continue
        literals: dict[str, ast.Constant] = {}
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                literals[node.targets[0].id] = node.value
        seen: set[int] = set()
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if _dotted(node.func).rsplit(".", 1)[-1] not in _STRING_TEMPLATE_CALLS:
                continue
            first = node.args[0]
            literal = literals.get(first.id) if isinstance(first, ast.Name) else first
            if (
                isinstance(literal, ast.Constant)
                and isinstance(literal.value, str)
                and "<" in literal.value
                and id(literal) not in seen
            ):
                seen.add(id(literal))
                out.append(InlineTemplate(module.path, literal.lineno, literal.value))
    return sorted(out, key=lambda t: (t.file, t.line))
