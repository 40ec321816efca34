"""The one AST pass over a module that collects settings, calls, routes, SQL builds and secret literals."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from deploy.project.facts import CallSite, Literal_, Setting, SqlBuild, TemplateBuild, WritePath, _Facts
from deploy.project.injection import (
    _PASSING_METHODS,
    _QUOTING,
    _SQL_CALLS,
    _SQL_SAFE_CALLS,
    _SQL_WORDS,
    _called_leaves,
    _constant_text,
    _string_build,
    _whitelisted,
)
from deploy.project.source import (
    _dotted,
)
from deploy.project.values import (
    _SECRET_NAME,
    _URL_CREDENTIALS,
    _WORDS_ONLY,
    _env_read,
    evaluate,
    label_value,
)
from deploy.project.views import note_route
from deploy.project.writes import (
    _DB_KEYS,
    _WRITE_KEYS,
    _WRITING_CALLS,
    SQLITE_FILE_KEYS,
    _path_of,
    _sqlite_path,
    names_sqlite,
)

_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


#: Calls that compile their first argument as a Jinja template.
_TEMPLATE_CALLS = frozenset({"render_template_string", "stream_template_string", "from_string"})
_JINJA_TEMPLATE = frozenset({"Template", "jinja2.Template"})
#: Parts of `request` that carry what the client sent (headers and cookies included).
_REQUEST_DATA = frozenset(
    {
        "args",
        "form",
        "values",
        "json",
        "get_json",
        "data",
        "get_data",
        "cookies",
        "headers",
        "files",
        "view_args",
    }
)


def _request_read(node: ast.AST, tainted: dict[str, str]) -> str | None:
    """`request.args` (or the tainted variable's source) if `node` contains data from the request."""
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Attribute)
            and child.attr in _REQUEST_DATA
            and _dotted(child.value) in ("request", "flask.request")
        ):
            return f"request.{child.attr.removeprefix('get_')}"
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id in tainted:
            return tainted[child.id]
    return None


def _build_kind(node: ast.AST) -> str | None:
    """How a string is assembled from pieces: an f-string, `+`, `%` or `.format()`; None otherwise."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
        return "an f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return "string concatenation"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return "'%' formatting"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return "str.format()"
    return None


def is_main_guard(node: ast.stmt) -> bool:
    """Whether a statement is `if __name__ == "__main__":`."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


class _Visitor(ast.NodeVisitor):
    """One pass over a module collecting settings, calls, routes, SQL builds and literals."""

    def __init__(self, path: str, facts: _Facts):
        self.path = path
        self.facts = facts
        self.scope: list[str] = []  # class names
        self.function: list[str] = []
        self.main_guard = 0
        self.built: dict[str, str] = {}  # variable -> how its SQL string was built (per function)
        #: Per function: its parameters, and locals that carry a value from them or from the request.
        self.inputs: set[str] = set()
        #: Per function: names checked against a fixed set (`if col not in COLUMNS: abort(400)`).
        self.whitelisted: set[str] = set()
        #: Per function: names holding a SQL statement (to follow `sql += clause`).
        self.statements: set[str] = set()
        self.tainted: dict[str, str] = {}  # variable -> the request data it holds (per function)
        self.templated: dict[str, tuple[str, str]] = {}  # variable -> (source, how) of a built string
        #: The module is its own config (`app.config.from_object(__name__)`): its UPPER_CASE names are keys.
        self.self_config = False

    # scopes

    def visit_Module(self, node: ast.Module) -> None:
        self.self_config = any(
            isinstance(n, ast.Call)
            and _dotted(n.func).endswith("config.from_object")
            and len(n.args) == 1
            and isinstance(n.args[0], ast.Name)
            and n.args[0].id == "__name__"
            for n in ast.walk(node)
        )
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {_dotted(b).rsplit(".", 1)[-1] for b in node.bases}
        if bases & {"FlaskForm", "Form"} or node.name in self.facts.form_classes:
            self.facts.form_classes.add(node.name)
        if bases & ({"Flask", "APIFlask"} | self.facts.flask_classes):
            self.facts.flask_classes.add(node.name)
        if bases & {"BaseModel", "Schema"}:
            self.facts.checking.add(node.name)  # pydantic / marshmallow: `Item(**data)` validates
        self.scope.append(node.name)
        for stmt in _class_statements(node.body):
            if isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Name)
                        and _CONFIG_KEY.match(target.id)
                        and stmt.value is not None
                    ):
                        self._setting(target.id, stmt.value, stmt.lineno)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.facts.functions.add(node.name)
        note_route(self.facts, self.path, node)
        self.function.append(node.name)
        saved, self.built = self.built, {}
        saved_taint, self.tainted, self.templated = (self.tainted, self.templated), {}, {}
        saved_inputs = self.inputs, self.whitelisted, self.statements
        self.statements = set()
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        arguments += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
        self.inputs = {a.arg for a in arguments if a.arg not in ("self", "cls")}
        self.whitelisted = _whitelisted(node) if _SQL_CALLS & _called_leaves(node) else set()
        self.generic_visit(node)
        self.inputs, self.whitelisted, self.statements = saved_inputs
        self.built = saved
        self.tainted, self.templated = saved_taint
        self.function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if is_main_guard(node):
            self.main_guard += 1
            self.generic_visit(node)
            self.main_guard -= 1
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.facts.imports.add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self.facts.imports.add(node.module)
            for alias in node.names:
                self.facts.imports.add(f"{node.module}.{alias.name}")

    # assignments

    def _setting(self, key: str, value: ast.AST, line: int) -> None:
        scope = self.scope[-1] if self.scope else ""
        sqlite = (key in _DB_KEYS or key in SQLITE_FILE_KEYS or "SQLITE" in key) and names_sqlite(key, value)
        setting = Setting(key, evaluate(value), self.path, line, scope, sqlite)
        self.facts.settings.append(setting)
        self._secret_literal(key, value, line)
        found = (
            _sqlite_path(value) if key in _DB_KEYS else _path_of(value) if _WRITE_KEYS.match(key) else None
        )
        if found is not None:
            self.facts.writes.append(
                WritePath(self.path, line, key, found[0], found[1], production=setting.production)
            )

    def _secret_literal(self, name: str, value: ast.AST, line: int) -> None:
        if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
            if isinstance(value, ast.BoolOp):  # os.environ.get("X") or "fallback"
                for part in value.values[1:]:
                    self._secret_literal(name, part, line)
            elif isinstance(value, ast.Call) and _env_read(value):
                default = value.args[1] if len(value.args) > 1 else None
                if default is not None:
                    self._secret_literal(name, default, line)
            return
        text = value.value
        scope = self.scope[-1] if self.scope else ""
        looks_secret = _URL_CREDENTIALS.match(text) or (
            _SECRET_NAME.search(name) and len(text) >= 3 and " " not in text.strip()
        )
        # An upper-case word is the name of an environment variable, not a value.
        if looks_secret and not re.fullmatch(r"[A-Z][A-Z0-9_]*", text) and not label_value(name, text):
            self.facts.secrets.append(
                Literal_(name, self.path, line, scope, word_shaped=bool(_WORDS_ONLY.fullmatch(text)))
            )

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._assign_target(target, node.value, node.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign_target(node.target, node.value, node.lineno)
        self.generic_visit(node)

    def _assign_target(self, target: ast.AST, value: ast.AST, line: int) -> None:
        if isinstance(target, ast.Subscript) and _dotted(target.value).endswith("config"):
            key = target.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._setting(key.value, value, line)
        elif isinstance(target, ast.Attribute) and target.attr in ("secret_key", "debug", "testing"):
            self._setting(
                {"secret_key": "SECRET_KEY", "debug": "DEBUG", "testing": "TESTING"}[target.attr], value, line
            )
        elif isinstance(target, ast.Subscript) and _dotted(target.value).endswith("headers"):
            key = target.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self.facts.headers.append((key.value, self.path, line))
        elif isinstance(target, ast.Name):
            how = _string_build(value)
            carries = self._carries_input(value)
            if how and self.function and carries:
                self.built[target.id] = how
            elif self.function:
                self.built.pop(target.id, None)
            if carries:
                self.inputs.add(target.id)
            else:
                self.inputs.discard(target.id)
            if _SQL_WORDS.search(_constant_text(value)):
                self.statements.add(target.id)
            self._track_request_data(target.id, value)
            if not self.scope:
                if (
                    _CONFIG_KEY.match(target.id)
                    and not self.function
                    and (self.self_config or _CONFIG_MODULE.match(self.path.rsplit("/", 1)[-1]) is not None)
                ):
                    self._setting(target.id, value, line)
                else:
                    self._secret_literal(target.id, value, line)

    def _track_request_data(self, name: str, value: ast.AST) -> None:
        """Remember variables that hold request data, or strings assembled from it."""
        source = _request_read(value, self.tainted)
        kind = _build_kind(value)
        self.tainted.pop(name, None)
        self.templated.pop(name, None)
        if source is None:
            if isinstance(value, ast.Name) and value.id in self.templated:
                self.templated[name] = self.templated[value.id]
            return
        if kind is not None:
            self.templated[name] = (source, kind)
        self.tainted[name] = source

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        if isinstance(node.target, ast.Name) and self._carries_input(node.iter):
            self.inputs.add(node.target.id)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def _carries_input(self, node: ast.AST) -> bool:
        """Whether an expression can hold a value from outside: the request, or the function's caller
        (a parameter, or a local computed from one). Constants, module-level names, numbers (`int()`,
        `len()`), placeholder lists (`", ".join("?" * len(ids))`), quoting helpers and names checked
        against a fixed set cannot."""
        if isinstance(node, ast.Constant):
            return False
        if isinstance(node, ast.Name):
            return node.id not in self.whitelisted and (node.id in self.inputs or node.id in self.tainted)
        if isinstance(node, ast.Attribute):
            if node.attr in _REQUEST_DATA and _dotted(node.value) in ("request", "flask.request"):
                return True
            # A dunder is the schema (`model.__tablename__`), not a value someone sent.
            return not node.attr.startswith("__") and self._carries_input(node.value)
        if isinstance(node, ast.Call):
            leaf = _dotted(node.func).rsplit(".", 1)[-1]
            if leaf in _SQL_SAFE_CALLS or _QUOTING.search(leaf):
                return False
            parts: list[ast.AST] = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute) and leaf in _PASSING_METHODS:
                parts.append(node.func.value)  # `name.strip()` still holds the name; `conn.cursor()` does not
            return any(self._carries_input(p) for p in parts)
        return any(self._carries_input(child) for child in ast.iter_child_nodes(node))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name) and self._carries_input(node.value):
            self.inputs.add(node.target.id)
            if node.target.id in self.statements or _SQL_WORDS.search(_constant_text(node.value)):
                self.built.setdefault(node.target.id, "string concatenation")
        if isinstance(node.target, ast.Name) and isinstance(node.op, ast.Add | ast.Mod):
            source = _request_read(node.value, self.tainted)
            if source is not None:
                self.templated[node.target.id] = (source, "string concatenation")
                self.tainted[node.target.id] = source
        self.generic_visit(node)

    def _write_call(self, name: str, node: ast.Call) -> None:
        leaf = name.rsplit(".", 1)[-1]
        what = _WRITING_CALLS.get(name) or (_WRITING_CALLS.get(leaf) if leaf.endswith("Handler") else None)
        target: ast.AST | None = None
        if what is not None:
            target = (
                node.args[0]
                if node.args
                else next(
                    (k.value for k in node.keywords if k.arg in ("filename", "name", "path", "database")),
                    None,
                )
            )
        elif leaf == "mkdir" and isinstance(node.func, ast.Attribute):
            what, target = "Path.mkdir()", node.func.value
        if target is None or what is None:
            return
        found = _path_of(target)
        if found is not None and found[0] not in (":memory:",):
            self.facts.writes.append(WritePath(self.path, node.lineno, what, found[0], found[1]))

    def _template_call(self, name: str, node: ast.Call) -> None:
        leaf = name.rsplit(".", 1)[-1]
        if not node.args or not (leaf in _TEMPLATE_CALLS or name in _JINJA_TEMPLATE):
            return
        first = node.args[0]
        found: tuple[str, str] | None = None
        if isinstance(first, ast.Name) and first.id in self.templated:
            found = self.templated[first.id]
        elif isinstance(first, ast.Name) and first.id in self.tainted:
            found = (self.tainted[first.id], "passed as the template")
        else:
            source = _request_read(first, self.tainted)
            if source is not None:
                found = (source, _build_kind(first) or "passed as the template")
        if found is not None:
            self.facts.templates.append(TemplateBuild(self.path, node.lineno, name, found[0], found[1]))

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "poolclass":
                self.facts.pool_classes.append((_dotted(value), self.path, value.lineno))
        self.generic_visit(node)

    # calls

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        if name:
            keywords = {k.arg: evaluate(k.value) for k in node.keywords if k.arg}
            self.facts.calls.append(
                CallSite(
                    name,
                    self.path,
                    node.lineno,
                    keywords,
                    tuple(evaluate(a) for a in node.args),
                    self.main_guard > 0,
                    self.function[-1] if self.function else "",
                )
            )
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("from_mapping", "update") and name.split(".")[-2:-1] == ["config"]:
                for k in node.keywords:
                    if k.arg and _CONFIG_KEY.match(k.arg):
                        self._setting(k.arg, k.value, k.value.lineno)
                if node.args and isinstance(node.args[0], ast.Dict):
                    for key_node, value_node in zip(node.args[0].keys, node.args[0].values, strict=True):
                        if isinstance(key_node, ast.Constant) and isinstance(key_node.value, str):
                            self._setting(key_node.value, value_node, value_node.lineno)
            self._template_call(name, node)
            self._write_call(name, node)
            if leaf in _SQL_CALLS and node.args:
                first = node.args[0]
                how = _string_build(first) if self._carries_input(first) else None
                if how is None and isinstance(first, ast.Name):
                    how = self.built.get(first.id)
                if how:
                    self.facts.sql.append(SqlBuild(self.path, node.lineno, how))
            for k in node.keywords:
                if k.arg == "poolclass":
                    self.facts.pool_classes.append((_dotted(k.value), self.path, k.value.lineno))
                if k.arg and _SECRET_NAME.search(k.arg):
                    self._secret_literal(k.arg, k.value, k.value.lineno)
            if (
                _dotted(node.func).endswith(("headers.setdefault", "headers.set", "headers.add"))
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                self.facts.headers.append((node.args[0].value, self.path, node.lineno))
        self.generic_visit(node)

    # routes


#: Modules whose upper-case names are config settings: config.py, settings.py and their prefixed kin
#: (default_config.py, base_settings.py), production.py, prod.py, constants.py.
_CONFIG_MODULE = re.compile(r"^(\w+_)?(config|settings)\.py$|^(production|prod|constants)\.py$")


def _class_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A class body's statements, with those under its `if`/`else` and `try` blocks (a config class that
    picks a setting by another one: `if REDIS_URL: ... else: CACHE_DIR = ...`), not those of its methods."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _class_statements([*stmt.body, *stmt.orelse])
        elif isinstance(stmt, ast.Try):
            yield from _class_statements([*stmt.body, *stmt.orelse, *stmt.finalbody])
            for handler in stmt.handlers:
                yield from _class_statements(handler.body)
