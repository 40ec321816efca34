"""Static facts about a Flask project, read once: Python sources (by `ast`), templates and files.

Nothing here imports or runs the user's code. `scan(root)` reads the files; everything else is pure
functions of their text, so checks can be tested on small inline projects.
"""

from __future__ import annotations

import ast
import itertools
import posixpath
import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

from deploy.project.routes import discover
from deploy.project.source import (
    _REQUEST_ATTRS,
    _ROUTE_METHODS,
    _VALIDATING_CALLS,
    _VALIDATING_DECORATORS,
    PythonFile,
    Route,
    _dotted,
)

#: The one list of folders that are not the project's own files: version control, virtual environments,
#: caches and deploy's state. Push never ships these (deploy.push.artifact), the import never copies them.
NEVER_SHIPPED = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".deploy", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)
#: Other environments and tool folders: push ships them only if git tracks them; the import's copy
#: and the scan leave them out.
TOOL_DIRS = frozenset({".hg", "env", ".tox", ".nox", "node_modules"})
#: Vendored and third-party copies: other people's code kept inside the project (a `vendor/` of copied
#: libraries, pip's `_vendor`, `third_party`, node_modules, an installed environment). What it does is
#: not the app's doing, and the app's own checks and entry points are never there.
VENDORED_DIRS = frozenset(
    {
        "vendor",
        "vendored",
        "_vendor",
        "third_party",
        "thirdparty",
        "third-party",
        "node_modules",
        "bower_components",
        "site-packages",
        "dist-packages",
    }
)
#: The one list of folders never scanned (deploy check, deploy init, served-module reachability): the
#: above, plus tests and generated files.
SKIP_DIRS = (
    NEVER_SHIPPED | TOOL_DIRS | VENDORED_DIRS | {".env", "build", "dist", "tests", "test", "deploy_checks"}
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
#: Lower-case words joined by separators, no digits: `invalid_credentials`, `x-kobo-synctoken`, `a=b-c`.
_WORDS_ONLY = re.compile(r"[a-z]+(?:[-_.=:/][a-z]+)*")
#: Words in a constant's name that say its value is a name or a label, not a credential.
_LABEL_NAME_WORDS = frozenset(
    {
        "header",
        "headers",
        "scope",
        "scopes",
        "status",
        "name",
        "field",
        "param",
        "label",
        "kind",
        "type",
        "prefix",
        "suffix",
        "cookie",
        "attr",
        "attribute",
        "column",
        "env",
        "var",
        "claim",
        "message",
        "msg",
        "error",
        "event",
        "endpoint",
        "route",
        "url",
        "path",
    }
)
#: Values that stand in for a real one (`changeme`, `<your-token>`, `${TOKEN}`, `xxxx`).
_PLACEHOLDER = re.compile(
    r"(?i)(<[^<>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\([a-z_]+\)s|x{3,}|\*{3,}|\.{3,}|"
    r"change[-_ ]?me|replace[-_ ]?me|your[-_ ].*|todo|fixme|placeholder|example|dummy|redacted)"
)


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _names_part(words: list[str], value: list[str]) -> bool:
    """Whether `value` is a run of the name's words at or after its credential word.

    `ACCESS_TOKEN_SCOPE_SYNC = "sync"` names a part of itself; `ADMIN_PASSWORD = "admin"` does not (the
    run comes before "password": it is the admin's password).
    """
    joined = "_".join(words)
    starts = [m.start() for m in _SECRET_NAME.finditer(joined)]
    if not starts or not value:
        return False
    first = joined[: starts[-1]].count("_")
    n = len(value)
    return any(words[i : i + n] == value for i in range(first, len(words) - n + 1))


def label_value(name: str, text: str) -> bool:
    """Whether the string bound to a credential-looking `name` is a name, label or placeholder, not a secret.

    Labels: the value spells (part of) the name (`ACCESS_TOKEN_SCOPE_SYNC = "sync"`), a header name
    (`x-kobo-synctoken`, `Authorization`), or lower-case words under a name that says it holds a name
    (`..._HEADER`, `..._SCOPE_...`, `..._STATUS_...`). Placeholders: `changeme`, `<token>`, `${TOKEN}`.
    Values with digits, mixed case or symbols (`admin123`, `SparkleAndShine`) stay secrets.
    """
    value = text.strip()
    if _PLACEHOLDER.fullmatch(value):
        return True
    words = _name_words(name)
    lowered = value.lower()
    if re.sub(r"[^a-z0-9]", "", lowered) == "".join(words):
        return True  # the value spells the name
    if _WORDS_ONLY.fullmatch(lowered) and _names_part(words, re.split(r"[^a-z]+", lowered)):
        return True  # "invalid_credentials" in AUTH_STATUS_INVALID_CREDENTIALS
    if re.fullmatch(r"(?i)x-[a-z]+(-[a-z]+)*|authorization|proxy-authorization|cookie|set-cookie", value):
        return True  # an HTTP header name
    return bool(_WORDS_ONLY.fullmatch(value) and _LABEL_NAME_WORDS & set(words))


_NON_PRODUCTION_SCOPE = re.compile(r"(?i)(dev|test|local|debug)")
_FORM_TAG = re.compile(r"<form\b[^>]*>", re.I)
_POST_METHOD = re.compile(r"""method\s*=\s*["']?post""", re.I)


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
    #: The value, or its fallback, names an SQLite database (`"sqlite:///" + basedir + "/app.db"`).
    sqlite: bool = False

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


#: What writes a database file (WritePath.what): a file, never a folder.
DATABASE_WRITERS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI", "sqlite3.connect()")


def write_is_log(w: WritePath) -> bool:
    """A logging file handler or a LOG_FILE/LOG_DIR/... config key."""
    return w.what.endswith("Handler()") or bool(re.search(r"(^|_)LOG_(FILE|DIR|FOLDER|PATH)$", w.what))


def written_folder(w: WritePath) -> str | None:
    """The project folder a relative write lands in (what app.shared must list), or None: a single file
    at the root (app.shared_files), or an absolute path. A database or a log file is a file: its folder;
    anything else (os.makedirs(), UPLOAD_FOLDER, WHOOSHEE_DIR) is the folder itself. Joined to a folder
    that cannot be resolved ("project"), only the first part is known, by name."""
    if w.base == "absolute":
        return None
    parts = w.path.strip("/").split("/")
    is_file = w.what in DATABASE_WRITERS or (
        write_is_log(w)
        and not w.what.endswith(("_DIR", "_FOLDER"))
        and (w.what.endswith(("Handler()", "_FILE")) or "." in parts[-1])
    )
    if w.base == "instance":
        return "instance"
    if w.base == "project":
        return parts[0] if len(parts) > 1 or not is_file else None
    return "/".join(parts[:-1] if is_file else parts) or None


_PLACEHOLDERS = frozenset({".gitkeep", ".keep", ".gitignore", ".placeholder", ".empty"})


def committed_files(root: Path, folder: str) -> list[str]:
    """The files git tracks under `folder` of the project at `root` (placeholders such as .gitkeep left
    out); without git, the files on disk."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", folder],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode("utf-8", "replace")
        files = [f for f in listed.split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        base = root / folder
        files = (
            sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())
            if base.is_dir()
            else []
        )
    return sorted(f for f in files if posixpath.basename(f) not in _PLACEHOLDERS)


@dataclass(frozen=True)
class Literal_:
    """A string literal bound to a name that looks like a credential."""

    name: str
    file: str
    line: int
    scope: str
    #: The value is lower-case words only (`invalid_credentials`, `target=watch-files`): a label when the
    #: author marked the line `# nosec`, since nothing in it looks generated or chosen as a password.
    word_shaped: bool = False


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
        root_path = app_root_path(self.python)
        for module in self.python:
            if module.tree is not None:
                token = _FOLDER_OF.set(folder_resolver(module, root_path))
                try:
                    _Visitor(module.path, facts).visit(module.tree)
                finally:
                    _FOLDER_OF.reset(token)
        facts.routes = [
            replace(r, validates=True)
            if not r.validates and (r.calls & facts.checking or r.handed & facts.checking_parameters)
            else r
            for r in facts.routes
        ]
        return facts

    @property
    def settings(self) -> list[Setting]:
        return self._facts.settings

    @property
    def calls(self) -> list[CallSite]:
        return self._facts.calls

    @cached_property
    def routes(self) -> list[Route]:
        """Decorator routes, routes added by calls (add_url_rule, add_resource, helpers), with prefixes."""
        return discover(self.python, self._facts.routes)

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
        templates = dict(self.glob(".html", ".jinja", ".jinja2", ".j2", ".htm"))
        macros, partials = _token_renderers(templates)
        for path, text in templates.items():
            for match in _FORM_TAG.finditer(text):
                if not _POST_METHOD.search(match.group(0)):
                    continue
                end = text.find("</form", match.end())
                body = text[match.end() : end if end != -1 else len(text)]
                has_token = _renders_token(body, macros, partials)
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
        """Normalised names of every declared dependency (requirements files, pyproject.toml, setup.py)."""
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
        names.update(_norm(n) for n in self.setup_requires or [])
        return names

    @cached_property
    def setup_requires(self) -> list[str] | None:
        """The names in setup.py's `setup(install_requires=[...])` (None without such a list)."""
        module = next((m for m in self.python if m.path == "setup.py"), None)
        if module is None or module.tree is None:
            return None
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _dotted(node.func).rsplit(".", 1)[-1] == "setup":
                value = next((k.value for k in node.keywords if k.arg == "install_requires"), None)
                if isinstance(value, ast.List | ast.Tuple):
                    return [
                        match.group(1)
                        for e in value.elts
                        if isinstance(e, ast.Constant)
                        and isinstance(e.value, str)
                        and (match := re.match(r"^\s*([A-Za-z0-9_.-]+)", e.value))
                    ]
        return None

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


#: What renders a CSRF token or nonce inside a form: Flask-WTF's `csrf_token()`/`hidden_tag()`,
#: Flask-Bootstrap's `quick_form`, or a hidden input named like a token (`_csrf`, `nonce`, `csrf_token`).
_FORM_TOKEN = re.compile(
    r"(?i)(csrf_token|hidden_tag|quick_form|render_form\s*\(\s*form|"
    r"<input\b[^>]*\bname\s*=\s*[\"']?[\w-]*(csrf|xsrf|nonce|authenticity_token)[\w-]*)"
)
_MACRO = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\((.*?)\{%-?\s*endmacro", re.S)
_INCLUDE = re.compile(r"""\{%-?\s*include\s+["']([^"']+)["']""")
_CALLED = re.compile(r"\{[{%]-?\s*(?:call\s+)?(?:[\w]+\.)?(\w+)\s*\(")


def _token_renderers(templates: dict[str, str]) -> tuple[set[str], set[str]]:
    """(macro names, template paths) that render a CSRF token, for forms that render it through them."""
    macros: set[str] = set()
    partials: set[str] = set()
    for path, text in templates.items():
        for match in _MACRO.finditer(text):
            if _FORM_TOKEN.search(match.group(2)):
                macros.add(match.group(1))
        if _FORM_TOKEN.search(text) and not _FORM_TAG.search(text):
            partials.add(path)
    return macros, partials


def _renders_token(body: str, macros: set[str], partials: set[str]) -> bool:
    """Whether a form body renders a token: itself, through a macro, or an included template."""
    if _FORM_TOKEN.search(body):
        return True
    if any(m.group(1) in macros for m in _CALLED.finditer(body)):
        return True
    included = [m.group(1).lstrip("/") for m in _INCLUDE.finditer(body)]
    return any(p == name or p.endswith("/" + name) for name in included for p in partials)


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
    #: Functions (not views) that read the request and check what they read (`_add_dataset()`), and
    #: those that check the parameters they are given (`_handle_new_user(form_data)`).
    checking: set[str] = field(default_factory=set)
    checking_parameters: set[str] = field(default_factory=set)


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
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
#: Config keys naming a folder the app writes into (uploads, logs, caches, search indexes).
_WRITE_KEYS = re.compile(
    r"^(\w*UPLOAD\w*_(FOLDER|PATH|DIR|DEST|ROOT)|UPLOADED_\w+_DEST|\w*LOG_(FILE|DIR|FOLDER|PATH)"
    r"|\w*(CACHE|WHOOSH\w*)_(DIR|DIRECTORY|FOLDER|PATH|ROOT))$"
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
            # `join(basedir, "whoosh_index", version)`: the path lies in the folder its constant parts name.
            known = list(itertools.takewhile(lambda a: isinstance(a, ast.Constant), node.args[1:]))
            if not known or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in known):
                return None
            return _path_of(ast.Call(node.func, [node.args[0], *known], []), depth + 1)
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
        and _dotted(node.func) in ("Path", "pathlib.Path", "PurePath", "str", "os.fspath")
        and len(node.args) == 1
    ):
        return _path_of(node.args[0], depth + 1)
    if isinstance(node, ast.Attribute) and node.attr == "instance_path":
        return "instance", "relative"  # Flask's default: the folder `instance` beside the app's package
    folder_of = _FOLDER_OF.get()
    folder = folder_of(node) if folder_of is not None and isinstance(node, ast.Name | ast.Attribute) else None
    if folder == TEMP_FOLDER:
        return None
    if folder:
        return folder, "relative"
    return None


#: How the module being scanned resolves a folder expression to a folder of the project (see
#: `folder_resolver`); set around each module's walk.
_FOLDER_OF: ContextVar[Callable[[ast.AST], str | None] | None] = ContextVar("_FOLDER_OF", default=None)


#: What `folder_resolver` gives for a folder made by `tempfile` (private /tmp under the unit).
TEMP_FOLDER = "\0tmp"


def app_root_path(modules: list[PythonFile]) -> str | None:
    """The project folder Flask's `app.root_path` is: the folder of the module that calls `Flask(...)`."""
    for module in modules:
        if module.tree is None or "Flask(" not in module.text:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _dotted(node.func) in ("Flask", "flask.Flask", "APIFlask"):
                return posixpath.dirname(module.path)
    return None


def _norm_folder(path: str) -> str | None:
    """A relative folder normalised ('' for the root), None when it leaves the project."""
    joined = posixpath.normpath(path) if path else "."
    if joined == ".." or joined.startswith("../"):
        return None
    return "" if joined == "." else joined


def _path_part(node: ast.AST) -> str | None:
    """A relative path piece an expression spells (a string, `os.pardir`, `os.curdir`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.startswith("/"):
        return node.value
    if _dotted(node) in ("os.pardir", "pardir"):
        return ".."
    if _dotted(node) in ("os.curdir", "curdir"):
        return "."
    return None


def _bindings(tree: ast.Module) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) of every single assignment and `with ... as` in a module, in source order."""
    found: list[tuple[int, ast.AST, ast.AST]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and len(n.targets) == 1:
            found.append((n.lineno, n.targets[0], n.value))
        elif isinstance(n, ast.With | ast.AsyncWith):
            found.extend((n.lineno, i.optional_vars, i.context_expr) for i in n.items if i.optional_vars)
    return [(target, value) for _line, target, value in sorted(found, key=lambda b: b[0])]


def folder_resolver(module: PythonFile, root_path: str | None) -> Callable[[ast.AST], str | None]:
    """A function giving the project folder (relative, '' for the root) an expression names, as far as
    the source tells: `__file__`, `os.path.dirname()`, `abspath()`, `Path(...).parent`, `.resolve()`,
    `os.path.join()`, `/`, `app.root_path`, and names assigned such an expression in this module."""
    names: dict[str, str] = {}
    if not any(word in module.text for word in ("__file__", "root_path", "tempfile", "cwd")):
        return lambda node: None  # nothing in this module can name a folder of the project
    own = app_root_path([module])
    if own is not None:
        root_path = own

    def resolve(node: ast.AST, depth: int = 0) -> str | None:
        if depth > 12:
            return None
        if isinstance(node, ast.Name):
            return module.path if node.id == "__file__" else names.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr == "root_path":
                return root_path
            if node.attr == "parent":
                inner = resolve(node.value, depth + 1)
                if inner is None or inner == TEMP_FOLDER:
                    return inner
                return _norm_folder(posixpath.dirname(inner))
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = resolve(node.left, depth + 1), _path_part(node.right)
            if left == TEMP_FOLDER:
                return left
            if left is None or right is None:
                return None
            return _norm_folder(posixpath.join(left, right))
        if not isinstance(node, ast.Call):
            return None
        name = _dotted(node.func)
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(node.func, ast.Attribute) and leaf in ("resolve", "absolute") and not node.args:
            return resolve(node.func.value, depth + 1)
        if name in ("os.getcwd", "getcwd", "Path.cwd", "pathlib.Path.cwd"):
            return ""  # the service's working directory: the release
        if not node.args:
            return None
        first = resolve(node.args[0], depth + 1)
        if first is None or first == TEMP_FOLDER:
            return first
        if leaf == "dirname":
            return _norm_folder(posixpath.dirname(first))
        if leaf in ("abspath", "realpath", "normpath", "fspath") or name in ("Path", "pathlib.Path", "str"):
            return first
        if leaf == "join":
            rest = [_path_part(a) for a in node.args[1:]]
            if any(r is None for r in rest):
                return None
            return _norm_folder(posixpath.join(first, *[r for r in rest if r is not None]))
        return None

    if module.tree is not None:
        for target, value in _bindings(module.tree):
            if not isinstance(target, ast.Name):
                continue
            if isinstance(value, ast.Call) and _dotted(value.func).startswith("tempfile."):
                names[target.id] = TEMP_FOLDER
                continue
            found = resolve(value)
            if found is not None:
                names[target.id] = found
    return resolve


def _based(head: ast.AST, tail: str) -> tuple[str, str] | None:
    """`tail` joined to a folder given by an expression (`basedir`, `app.instance_path`)."""
    name = _dotted(head) or ast.unparse(head)
    if name.endswith("instance_path"):
        return tail, "instance"
    folder_of = _FOLDER_OF.get()
    folder = folder_of(head) if folder_of is not None else None
    if folder == TEMP_FOLDER:
        return f"/tmp/{tail}", "absolute"  # noqa: S108 - a path compared, never used
    if folder is not None:
        joined = posixpath.normpath(posixpath.join(folder, tail))
        if joined != ".." and not joined.startswith("../"):
            return joined.removeprefix("./"), "relative"
    if _BASE_HINTS.search(name):
        return tail, "project"
    return None


def _sqlite_chain(node: ast.BinOp) -> tuple[str, str] | None:
    """The file of `"sqlite:///" + basedir + "/app.db"` (a longer `+` chain), when each piece is a
    string or a folder of the project the resolver knows."""
    operands: list[ast.AST] = []
    current: ast.AST = node
    while isinstance(current, ast.BinOp) and isinstance(current.op, ast.Add):
        operands.insert(0, current.right)
        current = current.left
    operands.insert(0, current)
    first = operands[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    match = re.match(r"^sqlite(\+\w+)?:///(.*)$", first.value.strip(), re.I)
    if match is None:
        return None
    folder_of = _FOLDER_OF.get()
    root = "\0root"
    pieces = [match.group(2)]
    for operand in operands[1:]:
        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
            pieces.append(operand.value)
            continue
        folder = folder_of(operand) if folder_of is not None else None
        if folder is None or folder == TEMP_FOLDER:
            return None
        pieces.append(f"{root}/{folder}")
    text = "".join(pieces).split("?", 1)[0]
    if root in text:
        relative = posixpath.normpath(text.rsplit(root, 1)[1].lstrip("/") or ".")
        return None if relative.startswith("..") or relative == "." else (relative, "relative")
    return (text, "absolute") if text.startswith("/") else (text, "relative")


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
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.BinOp):
        return _sqlite_chain(node)
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


#: Config keys that name a database file or URL (besides the URL keys of `_DB_KEYS`).
SQLITE_FILE_KEYS = ("DATABASE", "DATABASE_PATH", "DATABASE_FILE", "SQLITE_PATH", "SQLITE_DB", "SQLITE_FILE")
_SQLITE_SUFFIX = re.compile(r"(?i)\.(db|sqlite|sqlite3|db3)$")


def _leftmost_string(node: ast.AST, depth: int = 0) -> str | None:
    """The constant a string expression starts with (`"sqlite:///" + a + b`, f-strings, `.format`, `%`)."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _leftmost_string(node.left, depth + 1)
    if isinstance(node, ast.JoinedStr) and node.values:
        return _leftmost_string(node.values[0], depth + 1)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _leftmost_string(node.func.value, depth + 1)
    return None


def names_sqlite(key: str, node: ast.AST, depth: int = 0) -> bool:
    """Whether the value of config `key` (or its fallback when an environment variable is unset) is an
    SQLite database: an `sqlite:` URL however it is assembled, or a `DATABASE`-style key naming a
    `.db`/`.sqlite` file."""
    if depth > 8:
        return False
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return any(names_sqlite(key, v, depth + 1) for v in node.values[1:])
    if isinstance(node, ast.IfExp):
        return names_sqlite(key, node.body, depth + 1) or names_sqlite(key, node.orelse, depth + 1)
    if _env_read(node) is not None:
        fallback = node.args[1] if isinstance(node, ast.Call) and len(node.args) > 1 else None
        return fallback is not None and names_sqlite(key, fallback, depth + 1)
    start = _leftmost_string(node)
    if start is not None and re.match(r"(?i)^sqlite(\+\w+)?:", start.strip()):
        return True
    if key in SQLITE_FILE_KEYS or "SQLITE" in key:
        found = _path_of(node)
        return found is not None and (bool(_SQLITE_SUFFIX.search(found[0])) or "SQLITE" in key)
    return False


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


def sqlite_engines(modules: list[PythonFile]) -> list[tuple[str, int]]:
    """(file, line) of every SQLAlchemy `create_engine()` given an SQLite file URL (not `sqlite://`,
    the in-memory database)."""
    out: list[tuple[str, int]] = []
    for module in modules:
        if module.tree is None or "create_" not in module.text:
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Call)
                and node.args
                and _dotted(node.func).rsplit(".", 1)[-1] in ("create_engine", "create_async_engine")
                and names_sqlite("SQLALCHEMY_DATABASE_URI", node.args[0])
                and not (
                    isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).strip() in ("sqlite://", "sqlite:///:memory:")
                )
            ):
                out.append((module.path, node.lineno))
    return sorted(out)


def is_main_guard(node: ast.stmt) -> bool:
    """Whether a statement is `if __name__ == "__main__":`."""
    test = node.test if isinstance(node, ast.If) else None
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
        if bases & {"BaseModel", "Schema"}:
            self.facts.checking.add(node.name)  # pydantic / marshmallow: `Item(**data)` validates
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
                    and (
                        self.self_config
                        or self.path.rsplit("/", 1)[-1]
                        in (
                            "config.py",
                            "settings.py",
                            "default_settings.py",
                            "production.py",
                            "prod.py",
                            "constants.py",
                        )
                    )
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

    def _helper(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """A function that is not a view: note whether it validates the request or the data it is handed."""
        positional = [*node.args.posonlyargs, *node.args.args]
        # The data a helper is handed has no default; `return_id=False` is an option, not the data.
        required = positional[: len(positional) - len(node.args.defaults)]
        required += [a for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d is None]
        parameters = {a.arg for a in required}
        if _reads_request(node) and _validates_by_hand(node):
            self.facts.checking.add(node.name)
        if _rejects_bad_parameters(node, parameters - {"self", "cls"}):
            self.facts.checking_parameters.add(node.name)

    def _route(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
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
            self._helper(node)
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
                if (
                    leaf in self.facts.form_classes
                    or leaf.endswith(("Form", "_form"))
                    or leaf == "validate_on_submit"
                ):
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
                    frozenset(_helper_name(c) for c in helpers),
                    handed,
                    owner,
                )
            )


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
