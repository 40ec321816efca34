"""Static facts about a Flask project, read once: Python sources (by `ast`), templates and files.

Nothing here imports or runs the user's code. `scan(root)` reads the files; everything else is pure
functions of their text, so checks can be tested on small inline projects.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

#: The one list of folders that are not the project's own files: version control, virtual environments,
#: caches and deploy's state. Push never ships these (deploy.push.artifact), the import never copies them.
NEVER_SHIPPED = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".deploy", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)
#: Other environments and tool folders: push ships them only if git tracks them; the import's copy
#: and the scan leave them out.
TOOL_DIRS = frozenset({".hg", "env", ".tox", ".nox", "node_modules"})
#: Folders never scanned (deploy check, deploy init): the above, plus tests and generated files.
SKIP_DIRS = (
    NEVER_SHIPPED | TOOL_DIRS | {".env", "build", "dist", "site-packages", "tests", "test", "deploy_checks"}
)
#: The names an app factory goes by: `deploy init` and `deploy check` (without deploy.yaml) look for them.
FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")
MAX_FILE_BYTES = 1_000_000

#: `# deploy: ignore[SEC001, SEC002] why this is fine`
INLINE_IGNORE = re.compile(r"#\s*deploy:\s*ignore\[([A-Za-z0-9_, ]+)\]\s*(.*)$")

_SQL_WORDS = re.compile(
    r"\b(select|insert|update|delete|drop|create|alter|replace)\b.*\b(from|into|set|table|where|values)\b",
    re.I | re.S,
)
_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|secret|token|api_?key|private_?key|access_?key|auth_?key|credential)"
)
_URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]+:[^@/\s]+@", re.I)
_NON_PRODUCTION_SCOPE = re.compile(r"(?i)(dev|test|local|debug)")
_FORM_TAG = re.compile(r"<form\b[^>]*>", re.I)
_POST_METHOD = re.compile(r"""method\s*=\s*["']?post""", re.I)

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


# --- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """What an expression in the source evaluates to, as far as can be told without running it."""

    kind: Literal["literal", "env", "other"]
    literal: object = None
    env_name: str | None = None
    #: For an environment read with a fallback (`os.environ.get("X", "dev")`): the fallback literal.
    default: object = None
    has_default: bool = False
    #: For a bare name or attribute (`NullPool`, `config.X`): its dotted name.
    ref: str | None = None

    @property
    def is_true(self) -> bool:
        return self.kind == "literal" and self.literal is True

    @property
    def is_false(self) -> bool:
        return self.kind == "literal" and self.literal is False


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


def _env_read(node: ast.AST) -> tuple[str, bool, object] | None:
    """(name, has_default, default) if `node` reads an environment variable."""
    if isinstance(node, ast.Subscript) and _dotted(node.value) in ("os.environ", "environ"):
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, str):
            return index.value, False, None
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        key = node.args[0] if node.args else None
        if (
            name in ("os.environ.get", "environ.get", "os.getenv", "getenv", "os.environ.setdefault")
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
        ):
            default = node.args[1] if len(node.args) > 1 else None
            if isinstance(default, ast.Constant) and default.value is not None:
                return key.value, True, default.value
            return key.value, False, None
    return None


def evaluate(node: ast.AST) -> Value:
    """Classify an expression: a literal, an environment read (maybe with a fallback), or other."""
    env = _env_read(node)
    if env is not None:
        return Value("env", env_name=env[0], has_default=env[1], default=env[2])
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2:
        left = _env_read(node.values[0])
        right = node.values[1]
        if left is not None and isinstance(right, ast.Constant):
            return Value("env", env_name=left[0], has_default=right.value is not None, default=right.value)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        # `os.environ.get("X", "true") == "true"` is a flag read from the environment.
        env = _env_read(node.left)
        if env is not None:
            return Value("env", env_name=env[0])
    try:
        return Value("literal", literal=ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    number = _arithmetic(node)
    if number is not None:
        return Value("literal", literal=number)
    if isinstance(node, ast.Name | ast.Attribute):
        return Value("other", ref=_dotted(node) or None)
    return Value("other")


def _arithmetic(node: ast.AST, depth: int = 0) -> int | None:
    """The value of small integer arithmetic such as `16 * 1024 * 1024` (no evaluation of code)."""
    if depth > 10:
        return None
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub | ast.Pow):
        left, right = _arithmetic(node.left, depth + 1), _arithmetic(node.right, depth + 1)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            return left**right if 0 <= right <= 64 and abs(left) <= 1024 else None
        result = (
            left * right
            if isinstance(node.op, ast.Mult)
            else left + right
            if isinstance(node.op, ast.Add)
            else left - right
        )
        return result if abs(result) < 2**63 else None
    return None


# --- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A Flask config key given a value in the source (`app.config[...]`, `from_mapping`, a config class)."""

    key: str
    value: Value
    file: str
    line: int
    #: The config class it sits in ('' when set on the app directly).
    scope: str = ""

    @property
    def production(self) -> bool:
        """False for keys set in a config class meant for development or tests."""
        return not (self.scope and _NON_PRODUCTION_SCOPE.search(self.scope))


@dataclass(frozen=True)
class CallSite:
    """A call in the source: its dotted name (`sentry_sdk.init`, `CSRFProtect`), file, line, keywords."""

    name: str
    file: str
    line: int
    keywords: dict[str, Value]
    args: tuple[Value, ...]
    #: True inside `if __name__ == "__main__":`.
    main_guarded: bool = False
    function: str = ""

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]


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

    @property
    def changes_state(self) -> bool:
        return any(m in ("POST", "PUT", "PATCH", "DELETE") for m in self.methods)


@dataclass(frozen=True)
class SqlBuild:
    """A SQL statement built from strings and passed to execute()."""

    file: str
    line: int
    how: str


@dataclass(frozen=True)
class TemplateBuild:
    """A Jinja template compiled from a string that carries request data (server-side template injection)."""

    file: str
    line: int
    #: The call that compiles it (`render_template_string`, `from_string`, `Template`).
    call: str
    #: Where the request data comes from (`request.args`) and how it got into the template.
    source: str
    how: str


@dataclass(frozen=True)
class WritePath:
    """A place on disk the app writes to (a folder it creates, a log file, an SQLite file, uploads)."""

    file: str
    line: int
    #: What writes there: `os.mkdir()`, `RotatingFileHandler()`, `SQLALCHEMY_DATABASE_URI`, ...
    what: str
    #: The path as written, relative to the project (`logs/app.log`) or absolute (`/var/log/app`).
    path: str
    #: "absolute"; "relative" (to the working directory, the release); "project" (joined to a folder
    #: of the project such as `basedir`; which folder is not known); "instance" (app.instance_path).
    base: str
    #: True for config keys set in a development or test config class.
    production: bool = True


@dataclass(frozen=True)
class Literal_:
    """A string literal bound to a name that looks like a credential."""

    name: str
    file: str
    line: int
    scope: str


@dataclass(frozen=True)
class HtmlForm:
    """A `<form method="post">` in a template."""

    file: str
    line: int
    has_csrf_token: bool


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction (continuation lines joined)."""

    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Requirement:
    """One line of a requirements file."""

    name: str
    spec: str
    file: str
    line: int

    @property
    def pinned(self) -> bool:
        return bool(re.search(r"===?\s*[^\s,;*]+$", self.spec.split(";")[0].strip())) or "@" in self.spec


@dataclass(frozen=True)
class EnvLine:
    """A KEY=VALUE line of a .env file (the value is kept only to compare, never printed)."""

    key: str
    value: str
    file: str
    line: int


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


@dataclass
class Project:
    """Everything the static checks know about a project, with lazily computed views."""

    root: Path
    python: list[PythonFile] = field(default_factory=list)
    #: Other text files by relative path (templates, Dockerfile, requirements, .env, ...).
    files: dict[str, str] = field(default_factory=dict)

    # -- python views

    @cached_property
    def _facts(self) -> _Facts:
        facts = _Facts()
        for module in self.python:
            if module.tree is not None:
                _Visitor(module.path, facts).visit(module.tree)
        return facts

    @property
    def settings(self) -> list[Setting]:
        return self._facts.settings

    @property
    def calls(self) -> list[CallSite]:
        return self._facts.calls

    @property
    def routes(self) -> list[Route]:
        return self._facts.routes

    @property
    def sql_builds(self) -> list[SqlBuild]:
        return self._facts.sql

    @property
    def writes(self) -> list[WritePath]:
        """Folders created, log files, SQLite files and upload folders the source names."""
        return self._facts.writes

    @property
    def template_builds(self) -> list[TemplateBuild]:
        return self._facts.templates

    @property
    def secret_literals(self) -> list[Literal_]:
        return self._facts.secrets

    @property
    def imports(self) -> set[str]:
        return self._facts.imports

    @property
    def form_classes(self) -> set[str]:
        return self._facts.form_classes

    @property
    def functions(self) -> set[str]:
        return self._facts.functions

    @property
    def apps(self) -> list[CallSite]:
        """Where `Flask(...)` is called."""
        return [c for c in self.calls if c.name in ("Flask", "flask.Flask", "APIFlask")]

    @property
    def pool_classes(self) -> list[tuple[str, str, int]]:
        """(class name, file, line) for every `poolclass=` keyword or `"poolclass":` dict entry."""
        return self._facts.pool_classes

    @property
    def after_request_headers(self) -> list[tuple[str, str, int]]:
        """(header, file, line) for headers the app sets on every response itself."""
        return self._facts.headers

    def setting(self, key: str) -> list[Setting]:
        """Every production assignment of a config key, in source order."""
        return [s for s in self.settings if s.key == key and s.production]

    def calls_named(self, *names: str) -> list[CallSite]:
        """Calls whose dotted name, or its last part, is one of `names`."""
        wanted = set(names)
        return [c for c in self.calls if c.name in wanted or c.leaf in wanted]

    def uses(self, *modules: str) -> bool:
        """Whether any module imports one of `modules` (or a submodule of it)."""
        return any(i == m or i.startswith(m + ".") for i in self.imports for m in modules)

    # -- other files

    def glob(self, *suffixes: str) -> Iterator[tuple[str, str]]:
        for path, text in sorted(self.files.items()):
            if path.endswith(suffixes):
                yield path, text

    @cached_property
    def html_forms(self) -> list[HtmlForm]:
        forms: list[HtmlForm] = []
        for path, text in self.glob(".html", ".jinja", ".jinja2", ".j2", ".htm"):
            for match in _FORM_TAG.finditer(text):
                if not _POST_METHOD.search(match.group(0)):
                    continue
                end = text.find("</form", match.end())
                body = text[match.end() : end if end != -1 else len(text)]
                has_token = "csrf_token" in body or "hidden_tag" in body
                forms.append(HtmlForm(path, text.count("\n", 0, match.start()) + 1, has_token))
        return forms

    @cached_property
    def dockerfiles(self) -> dict[str, list[Instruction]]:
        return {
            path: parse_dockerfile(text)
            for path, text in sorted(self.files.items())
            if Path(path).name == "Dockerfile"
            or Path(path).name.startswith("Dockerfile.")
            or path.endswith(".dockerfile")
        }

    @cached_property
    def dotenv(self) -> list[EnvLine]:
        out: list[EnvLine] = []
        for path, text in sorted(self.files.items()):
            name = Path(path).name
            if name == ".env" or (
                name.startswith(".env.") and name not in (".env.example", ".env.sample", ".env.template")
            ):
                out.extend(parse_env_lines(text, path))
        return out

    @cached_property
    def requirements(self) -> list[Requirement]:
        out: list[Requirement] = []
        for path, text in sorted(self.files.items()):
            if _is_requirements(path):
                out.extend(parse_requirements(text, path))
        return out

    @cached_property
    def dependencies(self) -> set[str]:
        """Normalised names of every declared dependency (requirements files and pyproject.toml)."""
        names = {_norm(r.name) for r in self.requirements}
        pyproject = self.files.get("pyproject.toml")
        if pyproject:
            try:
                data = tomllib.loads(pyproject)
            except tomllib.TOMLDecodeError:
                data = {}
            project = data.get("project", {})
            for dep in project.get("dependencies", []) or []:
                match = re.match(r"^\s*([A-Za-z0-9_.-]+)", str(dep))
                if match:
                    names.add(_norm(match.group(1)))
            poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {}) or {}
            names.update(_norm(n) for n in poetry)
        return names

    def depends_on(self, *names: str) -> bool:
        return any(_norm(n) in self.dependencies for n in names)

    def inline_ignores(self, path: str, line: int) -> dict[str, str]:
        """{check id: reason} from `# deploy: ignore[...] reason` on `line` or the comment line above."""
        text = self.files.get(path)
        if text is None:
            module = next((m for m in self.python if m.path == path), None)
            text = module.text if module else None
        if text is None or line < 1:
            return {}
        lines = text.splitlines()
        out: dict[str, str] = {}
        for n in (line - 1, line - 2):
            if 0 <= n < len(lines):
                if n == line - 2 and not lines[n].lstrip().startswith("#"):
                    continue
                match = INLINE_IGNORE.search(lines[n])
                if match:
                    for check_id in match.group(1).split(","):
                        out.setdefault(check_id.strip().upper(), match.group(2).strip())
        return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_requirements(path: str) -> bool:
    name = Path(path).name
    return (name.endswith(".txt") and name.startswith("requirements")) or (
        "requirements" in Path(path).parts[:-1] and name.endswith(".txt")
    )


# --- parsing of other files ----------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining `\\` continuations and skipping comments."""
    out: list[Instruction] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1].rstrip() + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    if buffer:
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    return out


def dockerfile_env(instruction: Instruction) -> list[tuple[str, str]]:
    """(key, value) pairs of an ENV or ARG instruction (both `K=V K2=V2` and legacy `K V`)."""
    args = instruction.args
    if "=" not in args.split(" ", 1)[0]:
        key, _, value = args.partition(" ")
        return [(key, value.strip().strip("\"'"))]
    pairs = []
    for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?", args):
        pairs.append((match.group(1), (match.group(2) or "").strip("\"'")))
    return pairs


def parse_env_lines(text: str, path: str) -> list[EnvLine]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out.append(EnvLine(key.strip(), value, path, number))
    return out


def parse_requirements(text: str, path: str) -> list[Requirement]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "git+", "http:", "https:", "file:", ".")):
            continue
        line = line.split("\\")[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(\[[^\]]*\])?\s*(.*)$", line)
        if match:
            out.append(Requirement(match.group(1), match.group(3).strip(), path, number))
    return out


# --- the AST walk --------------------------------------------------------------------------------


@dataclass
class _Facts:
    settings: list[Setting] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    sql: list[SqlBuild] = field(default_factory=list)
    templates: list[TemplateBuild] = field(default_factory=list)
    writes: list[WritePath] = field(default_factory=list)
    secrets: list[Literal_] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    form_classes: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    headers: list[tuple[str, str, int]] = field(default_factory=list)
    pool_classes: list[tuple[str, str, int]] = field(default_factory=list)


_ROUTE_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE"}
_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SQL_CALLS = frozenset(
    {"execute", "executemany", "executescript", "text", "raw", "exec_driver_sql", "from_statement"}
)


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


#: Calls that create a folder or open a file for writing: {dotted name or leaf: what it is}.
_WRITING_CALLS = {
    "os.mkdir": "os.mkdir()",
    "os.makedirs": "os.makedirs()",
    "makedirs": "os.makedirs()",
    "FileHandler": "logging.FileHandler()",
    "RotatingFileHandler": "RotatingFileHandler()",
    "TimedRotatingFileHandler": "TimedRotatingFileHandler()",
    "WatchedFileHandler": "WatchedFileHandler()",
    "sqlite3.connect": "sqlite3.connect()",
}
#: Config keys naming a folder the app writes into (uploads, logs).
_WRITE_KEYS = re.compile(
    r"^(\w*UPLOAD\w*_(FOLDER|PATH|DIR|DEST|ROOT)|UPLOADED_\w+_DEST|\w*LOG_(FILE|DIR|FOLDER|PATH))$"
)
_DB_KEYS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI")
_BASE_HINTS = re.compile(r"(?i)(__file__|dir|base|root|path|here|folder)")


def _path_of(node: ast.AST, depth: int = 0) -> tuple[str, str] | None:
    """(path, base) of an expression naming a file or folder, as far as the source tells; None if unknown."""
    if depth > 8:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        if not text or "://" in text or text.startswith((":", "~", "$")):
            return None
        return (text, "absolute") if text.startswith("/") else (text.removeprefix("./"), "relative")
    env = _env_read(node)
    if env is not None:
        return _path_of(ast.Constant(env[2]), depth + 1) if env[1] and isinstance(env[2], str) else None
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _path_of(node.values[-1], depth + 1)
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) in ("os.path.join", "path.join", "join")
        and node.args
    ):
        tail = [a.value for a in node.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(tail) != len(node.args) - 1:
            return None
        head = node.args[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            found = _path_of(ast.Constant("/".join([head.value, *tail])), depth + 1)
            return found
        return _based(head, "/".join(tail))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        right = node.right
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            left = _path_of(node.left, depth + 1)
            if left is not None:
                return f"{left[0].rstrip('/')}/{right.value}", left[1]
            return _based(node.left, right.value)
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) in ("Path", "pathlib.Path", "PurePath")
        and len(node.args) == 1
    ):
        return _path_of(node.args[0], depth + 1)
    return None


def _based(head: ast.AST, tail: str) -> tuple[str, str] | None:
    """`tail` joined to a folder given by an expression (`basedir`, `app.instance_path`)."""
    name = _dotted(head) or ast.unparse(head)
    if name.endswith("instance_path"):
        return tail, "instance"
    if _BASE_HINTS.search(name):
        return tail, "project"
    return None


def _sqlite_path(node: ast.AST) -> tuple[str, str] | None:
    """(path, base) of the file an SQLite URL names (`sqlite:///app.db`, `'sqlite:///' + join(...)`)."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _sqlite_path(node.values[-1])
    env = _env_read(node)
    if env is not None:
        return _sqlite_path(ast.Constant(env[2])) if env[1] and isinstance(env[2], str) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        match = re.match(r"^sqlite(\+\w+)?:///(.*)$", node.value.strip(), re.I)
        if not match or match.group(2) in ("", ":memory:") or match.group(2).startswith("file::memory"):
            return None
        rest = match.group(2).split("?", 1)[0]
        return (rest, "absolute") if rest.startswith("/") else (rest, "relative")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = node.left
        if (
            isinstance(left, ast.Constant)
            and isinstance(left.value, str)
            and left.value.lower().startswith("sqlite")
        ):
            if re.match(r"^sqlite(\+\w+)?:////", left.value, re.I):
                return _path_of(ast.Constant("/" + left.value.split("////", 1)[1]))
            return _path_of(node.right)
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and str(first.value).lower().startswith("sqlite"):
            tail = node.values[-1]
            if isinstance(tail, ast.Constant) and isinstance(tail.value, str) and len(node.values) > 1:
                return tail.value.strip("/"), "project"
    return None


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
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


class _Visitor(ast.NodeVisitor):
    """One pass over a module collecting settings, calls, routes, SQL builds and literals."""

    def __init__(self, path: str, facts: _Facts):
        self.path = path
        self.facts = facts
        self.scope: list[str] = []  # class names
        self.function: list[str] = []
        self.main_guard = 0
        self.built: dict[str, str] = {}  # variable -> how its SQL string was built (per function)
        self.tainted: dict[str, str] = {}  # variable -> the request data it holds (per function)
        self.templated: dict[str, tuple[str, str]] = {}  # variable -> (source, how) of a built string

    # scopes

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {_dotted(b).rsplit(".", 1)[-1] for b in node.bases}
        if bases & {"FlaskForm", "Form"} or node.name in self.facts.form_classes:
            self.facts.form_classes.add(node.name)
        self.scope.append(node.name)
        for stmt in node.body:
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
        self._route(node)
        self.function.append(node.name)
        saved, self.built = self.built, {}
        saved_taint, self.tainted, self.templated = (self.tainted, self.templated), {}, {}
        self.generic_visit(node)
        self.built = saved
        self.tainted, self.templated = saved_taint
        self.function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_main_guard(node):
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
        setting = Setting(key, evaluate(value), self.path, line, scope)
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
        if looks_secret and not re.fullmatch(r"[A-Z][A-Z0-9_]*", text):
            self.facts.secrets.append(Literal_(name, self.path, line, scope))

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
            if how and self.function:
                self.built[target.id] = how
            self._track_request_data(target.id, value)
            if not self.scope:
                if (
                    _CONFIG_KEY.match(target.id)
                    and not self.function
                    and self.path.rsplit("/", 1)[-1]
                    in ("config.py", "settings.py", "default_settings.py", "production.py", "prod.py")
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

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
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
                how = _string_build(first)
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

    def _route(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        rules: list[tuple[str, tuple[str, ...]]] = []
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
                rules.append((str(rule), methods))
        if not rules:
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
                if leaf in self.facts.form_classes or leaf.endswith("Form"):
                    uses_form = True
                if leaf.endswith("Schema"):
                    validates = True
        for rule, methods in rules:
            self.facts.routes.append(
                Route(
                    rule,
                    methods,
                    node.name,
                    self.path,
                    node.lineno,
                    frozenset(reads),
                    validates,
                    uses_form,
                    exempt,
                )
            )


# --- reading a project from disk -----------------------------------------------------------------

_TEXT_NAMES = (
    ".html",
    ".css",
    ".htm",
    ".jinja",
    ".jinja2",
    ".j2",
    ".txt",
    ".toml",
    ".cfg",
    ".ini",
    ".yaml",
    ".yml",
    ".service",
    ".conf",
    ".dockerfile",
    ".lock",
)
_TEXT_EXACT = ("Dockerfile", "Procfile", ".env", ".dockerignore", ".gitignore", "Pipfile")


def _wanted(name: str) -> bool:
    return name.endswith(_TEXT_NAMES) or name in _TEXT_EXACT or name.startswith(("Dockerfile.", ".env."))


def walk(root: Path) -> Iterator[Path]:
    """Every file of the project worth reading, skipping virtualenvs, caches and tests."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name in SKIP_DIRS or (entry / "pyvenv.cfg").exists():
                    continue
                if entry.name.startswith(".") and entry.name not in (".github",):
                    continue
                stack.append(entry)
            elif entry.is_file():
                yield entry


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") or path.name.endswith("_test.py") or path.name == "conftest.py"


def scan(root: Path) -> Project:
    """Read and parse every relevant file under `root` (the only I/O of this module)."""
    project = Project(root=root)
    for path in walk(root):
        rel = path.relative_to(root).as_posix()
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
        except OSError:
            continue
        if path.suffix == ".py":
            if _is_test_module(path) or "/migrations/versions/" in f"/{rel}":
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            try:
                tree: ast.Module | None = ast.parse(text, filename=rel)
                error = None
            except SyntaxError as exc:
                tree, error = None, f"line {exc.lineno}: {exc.msg}"
            project.python.append(PythonFile(rel, text, tree, error))
        elif _wanted(path.name):
            project.files[rel] = path.read_text(encoding="utf-8", errors="replace")
    # The folders of a project are facts too (static/, migrations/), recorded as empty entries.
    for name in ("migrations", "alembic", "static"):
        for found in root.glob(f"**/{name}"):
            if found.is_dir() and not any(part in SKIP_DIRS for part in found.relative_to(root).parts):
                project.files.setdefault(found.relative_to(root).as_posix() + "/", "")
    return project


def from_files(root: Path, files: dict[str, str]) -> Project:
    """Build a Project from in-memory files (for tests and for rendered configs)."""
    project = Project(root=root)
    for rel, text in sorted(files.items()):
        if rel.endswith(".py"):
            try:
                project.python.append(PythonFile(rel, text, ast.parse(text, filename=rel)))
            except SyntaxError as exc:
                project.python.append(PythonFile(rel, text, None, f"line {exc.lineno}: {exc.msg}"))
        else:
            project.files[rel] = text
    return project
