"""Where the app generates its secret key at start-up (a new key per process or per restart)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

from deploy.project.source import (
    PythonFile,
    _dotted,
)
from deploy.project.values import _env_read

# --- generated secret keys ----------------------------------------------------------------------

#: Calls that return fresh random bytes or text: a key made with one differs in every process.
KEY_GENERATORS = frozenset(
    {
        "os.urandom",
        "urandom",
        "secrets.token_hex",
        "secrets.token_urlsafe",
        "secrets.token_bytes",
        "token_hex",
        "token_urlsafe",
        "token_bytes",
        "uuid.uuid4",
        "uuid4",
        "Fernet.generate_key",
    }
)


@dataclass(frozen=True)
class KeyGeneration:
    """Where the app makes its own SECRET_KEY instead of reading a fixed one."""

    file: str
    line: int
    #: "file": a generated key written to a file and read back; "fallback": generated when an
    #: environment variable (or the config) has none; "process": generated at every start.
    how: Literal["file", "fallback", "process"]
    #: The environment variable that would give the key, when the code reads one.
    env_name: str | None = None
    #: Where the key is generated and where it is written to a file (for "file").
    generated_at: int | None = None
    written_at: int | None = None
    #: For a key that is not the SECRET_KEY (an encryption key a helper keeps in a file): its function.
    helper: str | None = None


def _is_key_target(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript) and _dotted(node.value).endswith("config"):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "SECRET_KEY"
    if isinstance(node, ast.Attribute):
        return node.attr in ("secret_key", "SECRET_KEY")
    return isinstance(node, ast.Name) and node.id == "SECRET_KEY"


def _generator_line(node: ast.AST) -> int | None:
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and _dotted(child.func) in KEY_GENERATORS:
            return child.lineno
    return None


def _file_write_line(node: ast.AST) -> int | None:
    """The line of the first write to a file under `node` (`open(p, "w")`, `.write_text()`)."""
    for child in ast.walk(node):
        if not isinstance(child, ast.Call):
            continue
        name = _dotted(child.func)
        if name.rsplit(".", 1)[-1] in ("write_text", "write_bytes"):
            return child.lineno
        if name in ("open", "io.open", "os.open", "os.fdopen"):
            mode = child.args[1] if len(child.args) > 1 else None
            mode = mode or next((k.value for k in child.keywords if k.arg == "mode"), None)
            if (
                isinstance(mode, ast.Constant)
                and isinstance(mode.value, str)
                and set(mode.value) & set("wax")
            ):
                return child.lineno
            if name == "os.open":
                return child.lineno
    return None


def _mentions_key(node: ast.AST) -> bool:
    return any(
        (isinstance(c, ast.Constant) and c.value == "SECRET_KEY")
        or (isinstance(c, ast.Attribute) and c.attr in ("secret_key", "SECRET_KEY"))
        for c in ast.walk(node)
    )


_KEY_HELPER = re.compile(r"(?i)(^|_)(key|secret)(_|$)")


def key_file_helpers(modules: list[PythonFile], used: set[tuple[str, int]]) -> list[KeyGeneration]:
    """Functions named for a key or secret (`get_encryption_key`, `init_secret`) that generate one and
    write it to a file, when the app calls them; `used` are (file, line) of generations already found
    (for SECRET_KEY)."""
    called = {
        _dotted(n.func).rsplit(".", 1)[-1]
        for m in modules
        if m.tree is not None
        for n in ast.walk(m.tree)
        if isinstance(n, ast.Call)
    }
    out: list[KeyGeneration] = []
    for module in modules:
        if module.tree is None:
            continue
        for f in ast.walk(module.tree):
            if not isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) or not _KEY_HELPER.search(f.name):
                continue
            made, written = _generator_line(f), _file_write_line(f)
            if made is None or written is None or f.name not in called or (module.path, made) in used:
                continue
            out.append(KeyGeneration(module.path, f.lineno, "file", None, made, written, helper=f.name))
    return out


def key_generations(modules: list[PythonFile]) -> list[KeyGeneration]:
    """Every SECRET_KEY the source generates per process, or generates and keeps in a file."""
    out: list[KeyGeneration] = []
    for module in modules:
        if module.tree is None or not ("SECRET_KEY" in module.text or "secret_key" in module.text):
            continue
        functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {
            f.name: f for f in ast.walk(module.tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        # Functions that generate a key and write it to a file: {name: (generated, written)}.
        writers: dict[str, tuple[int, int]] = {}
        for name, f in functions.items():
            made, written = _generator_line(f), _file_write_line(f)
            if made is not None and written is not None:
                writers[name] = (made, written)
        # `if not app.secret_key:` / `if "SECRET_KEY" not in os.environ:` guarding an assignment.
        guarded: set[int] = set()
        for node in ast.walk(module.tree):
            if isinstance(node, ast.If) and _mentions_key(node.test):
                guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        enclosing: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for f in functions.values():
            for n in ast.walk(f):
                enclosing.setdefault(id(n), f)
        for node in ast.walk(module.tree):
            value: ast.AST | None = None
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(_is_key_target(t) for t in targets):
                    value = node.value
            elif isinstance(node, ast.Call) and _dotted(node.func).endswith(
                ("config.update", "from_mapping")
            ):
                value = next((k.value for k in node.keywords if k.arg == "SECRET_KEY"), None)
            if value is None:
                continue
            line = getattr(node, "lineno", 0)
            called = {_dotted(c.func).rsplit(".", 1)[-1] for c in ast.walk(value) if isinstance(c, ast.Call)}
            writer = next((writers[c] for c in sorted(called) if c in writers), None)
            # The variable that gives the key: `os.environ.get("X") or ...`, `os.environ.get("X", ...)`.
            first = value.values[0] if isinstance(value, ast.BoolOp) else value
            env = _env_read(first)
            env_name = env[0] if env else None
            if writer is None and isinstance(value, ast.Name):
                scope = enclosing.get(id(node))
                if scope is not None and scope.name in writers:
                    writer = writers[scope.name]
            if writer is not None:
                out.append(KeyGeneration(module.path, line, "file", env_name, writer[0], writer[1]))
                continue
            made = _generator_line(value)
            if made is None:
                continue
            if env is not None or id(node) in guarded or isinstance(value, ast.BoolOp | ast.IfExp):
                out.append(KeyGeneration(module.path, line, "fallback", env_name, made))
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "SECRET_KEY" for t in node.targets
            ):
                # `self.SECRET_KEY = os.urandom(32)` in a config object (no config key SEC003 sees).
                out.append(KeyGeneration(module.path, line, "process", None, made))
    return out
