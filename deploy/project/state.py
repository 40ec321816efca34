"""What a view keeps in the process (module-level containers it mutates) and the responses it streams."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

from deploy.project.source import (
    PythonFile,
    _dotted,
)

# --- per-process state ----------------------------------------------------------------------------

#: Calls that make an empty container kept at module level (`cache = {}` is an ast.Dict).
_CONTAINER_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "defaultdict",
        "OrderedDict",
        "Counter",
        "deque",
        "collections.defaultdict",
        "collections.OrderedDict",
        "collections.Counter",
        "collections.deque",
    }
)
_MUTATING_METHODS = frozenset(
    {
        "append",
        "add",
        "update",
        "pop",
        "popitem",
        "setdefault",
        "clear",
        "extend",
        "insert",
        "remove",
        "discard",
        "appendleft",
        "popleft",
    }
)
_VIEW_DECORATORS = frozenset({"route", "get", "post", "put", "patch", "delete"})


@dataclass(frozen=True)
class ProcessState:
    """Module-level state that the views change at runtime: each worker process has its own copy."""

    file: str
    line: int
    what: str
    #: Where a view (or a function a view calls) changes it, for the message.
    changed_at: int | None = None


def _is_view(f: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in f.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = _dotted(call)
        if "." in name and name.rsplit(".", 1)[-1] in _VIEW_DECORATORS:
            return True
    return False


def _mutation_of(node: ast.AST, names: set[str]) -> str | None:
    """The module-level container `node` changes (`d[k] = v`, `del d[k]`, `d.pop(k)`), if any."""
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = list(node.targets)
    for t in targets:
        if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in names:
            return t.value.id
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _MUTATING_METHODS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in names
    ):
        return node.func.value.id
    return None


def process_state(modules: list[PythonFile]) -> list[ProcessState]:
    """Per-process state the app relies on: module-level dicts/lists/sets that the views change,
    rate limits kept in memory (`storage_uri="memory://"`), and TinyDB JSON files (no locking)."""
    out: list[ProcessState] = []
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            uri = next((k.value for k in node.keywords if k.arg in ("storage_uri", "storage_url")), None)
            if isinstance(uri, ast.Constant) and str(uri.value).startswith("memory://"):
                out.append(ProcessState(module.path, node.lineno, f"{name}(storage_uri='memory://')"))
            elif name.rsplit(".", 1)[-1] == "TinyDB" and not any(
                _dotted(a).endswith("MemoryStorage")
                for a in [*node.args[1:], *(k.value for k in node.keywords)]
            ):
                out.append(ProcessState(module.path, node.lineno, "TinyDB() JSON file"))
        # Module-level containers, and the views (and the functions they call) that change them.
        containers: dict[str, int] = {}
        for stmt in module.tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                value = stmt.value
                empty = isinstance(value, ast.Dict | ast.List | ast.Set) or (
                    isinstance(value, ast.Call) and _dotted(value.func) in _CONTAINER_CALLS
                )
                if empty and not stmt.targets[0].id.isupper():
                    containers[stmt.targets[0].id] = stmt.lineno
        if not containers:
            continue
        functions = {
            f.name: f for f in module.tree.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for f in ast.walk(module.tree):
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and _is_view(f):
                functions.setdefault(f.name, f)
        reached = [f for f in functions.values() if _is_view(f)]
        seen = {f.name for f in reached}
        while reached:
            f = reached.pop()
            for n in ast.walk(f):
                if (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Name)
                    and n.func.id in functions
                    and n.func.id not in seen
                ):
                    seen.add(n.func.id)
                    reached.append(functions[n.func.id])
        changed: dict[str, int] = {}
        for fname in sorted(seen):
            f = functions[fname]
            # A name the function binds itself (and does not declare global) is its own local.
            local = {
                n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            } | {a.arg for a in ast.walk(f.args) if isinstance(a, ast.arg)}
            local -= {g for n in ast.walk(f) if isinstance(n, ast.Global) for g in n.names}
            for n in ast.walk(f):
                hit = _mutation_of(n, set(containers) - local)
                if hit is not None:
                    changed.setdefault(hit, getattr(n, "lineno", 0))
        for var, at in sorted(changed.items()):
            out.append(ProcessState(module.path, containers[var], f"module-level {var!r}", at))
    return out


# --- streaming responses ------------------------------------------------------------------------

_STREAM_CALLS = frozenset({"stream_with_context", "stream_template", "stream_template_string"})
_RESPONSE_CALLS = frozenset({"Response", "response_class", "make_response", "StreamingResponse"})
#: A module without any of these words has no stream (a cheap test before walking its tree).
_STREAM_HINTS = re.compile(r"event-stream|flask_sse|SocketIO|stream_|Response\(|response_class|make_response")


@dataclass(frozen=True)
class Stream:
    """A response that stays open while a generator produces it."""

    file: str
    line: int
    #: "sse": server-sent events (open as long as the page is); "socketio": Flask-SocketIO;
    #: "stream": a generator response (open until it is fully sent).
    kind: Literal["sse", "socketio", "stream"]
    how: str


def _is_event_stream(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "event-stream" in node.value


def streams(modules: list[PythonFile]) -> list[Stream]:
    """Streaming responses: server-sent events, Flask-SSE, Flask-SocketIO, generator responses."""
    out: dict[tuple[str, int], Stream] = {}
    for module in modules:
        if module.tree is None or not _STREAM_HINTS.search(module.text):
            continue
        functions = {
            f.name: f for f in ast.walk(module.tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        }

        def add(
            line: int, kind: Literal["sse", "socketio", "stream"], how: str, path: str = module.path
        ) -> None:
            known = out.get((path, line))
            if known is None or (known.kind == "stream" and kind != "stream"):
                out[(path, line)] = Stream(path, line, kind, how)

        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                if any(n == "flask_sse" or n.startswith("flask_sse.") for n in names):
                    add(node.lineno, "sse", "Flask-SSE")
                continue
            if _is_event_stream(node):
                add(getattr(node, "lineno", 0), "sse", "a text/event-stream response")
                continue
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "SocketIO" or name in ("flask_socketio.SocketIO",):
                add(node.lineno, "socketio", "Flask-SocketIO")
            elif leaf in _STREAM_CALLS:
                add(node.lineno, "stream", f"{leaf}()")
            elif leaf in _RESPONSE_CALLS and node.args:
                first = node.args[0]
                called = _dotted(first.func).rsplit(".", 1)[-1] if isinstance(first, ast.Call) else ""
                if isinstance(first, ast.GeneratorExp) or (
                    called in functions
                    and any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(functions[called]))
                ):
                    what = f"{called}()" if called else "a generator expression"
                    add(node.lineno, "stream", f"a {leaf}() streamed from {what}")
    return sorted(out.values(), key=lambda s: (s.file, s.line))
