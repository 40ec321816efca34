"""Static facts about a Flask project, read once: Python sources (by `ast`), templates and files.

Nothing here imports or runs the user's code. `scan(root)` reads the files; everything else is pure
functions of their text, so checks can be tested on small inline projects.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from deploy.project.facts import (
    DATABASE_WRITERS,
    CallSite,
    Literal_,
    Setting,
    SqlBuild,
    TemplateBuild,
    WritePath,
    _Facts,
    committed_files,
    write_is_log,
    written_folder,
)
from deploy.project.files import (
    _FORM_TAG,
    _POST_METHOD,
    NEVER_SHIPPED,
    EnvLine,
    HtmlForm,
    Instruction,
    Requirement,
    _is_requirements,
    _norm,
    _renders_token,
    _token_renderers,
    dockerfile_env,
    parse_dockerfile,
    parse_env_lines,
    parse_requirements,
)
from deploy.project.injection import InlineTemplate, inline_templates
from deploy.project.keys import KEY_GENERATORS, KeyGeneration, key_file_helpers, key_generations
from deploy.project.routes import discover
from deploy.project.source import (
    PythonFile,
    Route,
    _dotted,
)
from deploy.project.state import ProcessState, Stream, process_state, streams
from deploy.project.values import Value, evaluate, label_value
from deploy.project.visitor import _Visitor, is_main_guard
from deploy.project.writes import (
    _FOLDER_OF,
    SQLITE_FILE_KEYS,
    TEMP_FOLDER,
    app_root_path,
    folder_resolver,
    names_sqlite,
    sqlite_engines,
)

#: The scan's public face: what checks, init and push import from here (the parts live in the
#: sibling modules named above).
__all__ = [
    "DATABASE_WRITERS",
    "FACTORY_NAMES",
    "INLINE_IGNORE",
    "KEY_GENERATORS",
    "MAX_FILE_BYTES",
    "NEVER_SHIPPED",
    "SKIP_DIRS",
    "SQLITE_FILE_KEYS",
    "TEMP_FOLDER",
    "TOOL_DIRS",
    "VENDORED_DIRS",
    "CallSite",
    "EnvLine",
    "HtmlForm",
    "InlineTemplate",
    "Instruction",
    "KeyGeneration",
    "Literal_",
    "ProcessState",
    "Project",
    "Requirement",
    "Setting",
    "SqlBuild",
    "Stream",
    "TemplateBuild",
    "Value",
    "WritePath",
    "app_root_path",
    "committed_files",
    "dockerfile_env",
    "evaluate",
    "folder_resolver",
    "from_files",
    "inline_templates",
    "is_main_guard",
    "is_skipped_dir",
    "key_file_helpers",
    "key_generations",
    "label_value",
    "names_sqlite",
    "parse_dockerfile",
    "parse_env_lines",
    "parse_requirements",
    "process_state",
    "scan",
    "sqlite_engines",
    "streams",
    "walk",
    "write_is_log",
    "written_folder",
]

#: Other environments, tool folders and deploy's own rendered files (deploy-out): push ships them only if
#: git tracks them; the import's copy and the scan leave them out.
TOOL_DIRS = frozenset({".hg", "env", ".tox", ".nox", "node_modules", "deploy-out"})
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
#: A test suite's folder by its name's parts (`browser-test`, `integration_tests`, `e2e`): test code, seed
#: scripts and fixtures, never what production runs.
_TEST_DIR = re.compile(r"(?i)^(tests?|testing|e2e)$|^(tests?|e2e)[-_]|[-_](tests?|testing|e2e)$")


def is_skipped_dir(name: str) -> bool:
    """A folder `deploy init` and `deploy check` never read: SKIP_DIRS, or a test suite's by its name."""
    return name in SKIP_DIRS or _TEST_DIR.search(name) is not None


#: The names an app factory goes by: `deploy init` and `deploy check` (without deploy.yaml) look for them.
FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")
MAX_FILE_BYTES = 1_000_000

#: `# deploy: ignore[SEC001, SEC002] why this is fine`
INLINE_IGNORE = re.compile(r"#\s*deploy:\s*ignore\[([A-Za-z0-9_, ]+)\]\s*(.*)$")


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
        """Where `Flask(...)` (or a project subclass of it: `CTFdFlask(__name__)`) is called."""
        own = self._facts.flask_classes
        return [c for c in self.calls if c.name in ("Flask", "flask.Flask", "APIFlask") or c.leaf in own]

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
                if is_skipped_dir(entry.name) or (entry / "pyvenv.cfg").exists():
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
