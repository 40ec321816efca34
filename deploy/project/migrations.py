"""Alembic migrations (Flask-Migrate's migrations/versions, alembic/versions, alembic.ini's
script_location) read with `ast`: the columns and tables each upgrade drops or renames, and which of
them the project's models still use. Pure apart from `read_migrations`, which reads the files.

Expand/contract: a migration runs before the new release serves, while the old one still does; a
migration that drops or renames what the running release uses breaks it until the switch, and one
that drops what the new code still uses breaks the new release too.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from deploy.project.source import PythonFile

#: Folders never searched for migrations (virtualenvs, caches, node_modules).
_SKIP = {
    ".git",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    "site-packages",
}
_SQL_DROP_TABLE = re.compile(r"(?i)\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([\w.\"]+)")
_SQL_DROP_COLUMN = re.compile(
    r"(?i)\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"]+)\s+DROP\s+(?:COLUMN\s+)?"
    r"(?:IF\s+EXISTS\s+)?([\w\"]+)"
)
_SQL_RENAME_COLUMN = re.compile(
    r"(?i)\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"]+)\s+RENAME\s+(?:COLUMN\s+)?([\w\"]+)\s+TO\s+([\w\"]+)"
)
_SQL_RENAME_TABLE = re.compile(
    r"(?i)\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"]+)\s+RENAME\s+TO\s+([\w\"]+)"
)
_SQL_KEYWORDS = {"constraint", "default", "not", "column"}


@dataclass(frozen=True)
class Removal:
    """A table or column an upgrade drops or renames, and the operation that does it."""

    op: str
    kind: Literal["table", "column"]
    table: str
    column: str | None
    #: The new name of a rename (None: a drop).
    new_name: str | None
    file: str
    line: int

    @property
    def what(self) -> str:
        return f"table {self.table}" if self.kind == "table" else f"column {self.table}.{self.column}"

    @property
    def verb(self) -> str:
        return f"renames {self.what} to {self.new_name}" if self.new_name else f"drops {self.what}"

    @property
    def name(self) -> str:
        """The name that goes away (the table's, or the column's)."""
        return self.table if self.kind == "table" else str(self.column)


@dataclass(frozen=True)
class Migration:
    file: str
    revision: str | None
    down_revisions: tuple[str, ...]
    removals: tuple[Removal, ...]


@dataclass(frozen=True)
class Use:
    """Where the code maps a table or column: a model class, its attribute, or a Table()."""

    table: str
    column: str | None
    where: str
    file: str
    line: int


# --- finding and reading the files ------------------------------------------------------------------


def version_dirs(paths: Iterable[str], alembic_ini: dict[str, str] | None = None) -> set[str]:
    """The folders of Alembic revision files among `paths` (relative, POSIX): `versions/` beside an
    env.py or script.py.mako, or under a folder named migrations or alembic, or alembic.ini's
    script_location (`alembic_ini`: {path of an alembic.ini: its text})."""
    paths = list(paths)
    found: set[str] = set()
    present = set(paths)
    for path in paths:
        parts = PurePosixPath(path).parts
        if len(parts) < 2 or parts[-2] != "versions" or not path.endswith(".py"):
            continue
        if any(part in _SKIP for part in parts):
            continue
        versions = str(PurePosixPath(*parts[:-1]))
        parent = PurePosixPath(versions).parent
        if parent.name in ("migrations", "alembic") or {f"{parent}/env.py", f"{parent}/script.py.mako"} & {
            p.removeprefix("./") for p in present
        }:
            found.add(versions)
    for ini_path, text in (alembic_ini or {}).items():
        location = _script_location(text)
        if location:
            base = PurePosixPath(ini_path).parent
            found.add(str(PurePosixPath(base, location.replace("%(here)s", ".").strip("/"), "versions")))
    return {str(PurePosixPath(d)) for d in found}


def _script_location(text: str) -> str | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser.get("alembic", "script_location", fallback=None)


def in_versions(path: str, dirs: set[str]) -> bool:
    return str(PurePosixPath(path).parent) in dirs and path.endswith(".py")


def read_migrations(root: Path) -> dict[str, str]:
    """{relative path: text} of the project's Alembic revision files."""
    candidates: list[str] = []
    inis: dict[str, str] = {}
    for path in _walk(root, 0):
        rel = path.relative_to(root).as_posix()
        if path.name == "alembic.ini":
            inis[rel] = path.read_text(encoding="utf-8", errors="replace")
        else:
            candidates.append(rel)
    dirs = version_dirs(candidates, inis)
    out: dict[str, str] = {}
    for d in sorted(dirs):
        folder = root / d
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                out[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    if depth > 5:
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            if entry.name not in _SKIP and not entry.name.startswith("."):
                yield from _walk(entry, depth + 1)
        elif entry.name in ("env.py", "script.py.mako", "alembic.ini") or entry.parent.name == "versions":
            yield entry


# --- the operations of an upgrade ---------------------------------------------------------------------


def parse_migrations(files: dict[str, str]) -> list[Migration]:
    """Each revision file's revision, down revisions and the removals of its upgrade()."""
    out = []
    for path, text in sorted(files.items()):
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError:
            continue
        revision, down = _revisions(tree)
        removals: list[Removal] = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("upgrade"):
                removals.extend(_removals(node, path))
        out.append(Migration(path, revision, down, tuple(removals)))
    return out


def heads(migrations: list[Migration]) -> list[Migration]:
    """The newest revisions: those no other revision names as its down revision."""
    downs = {d for m in migrations for d in m.down_revisions}
    return [m for m in migrations if m.revision is not None and m.revision not in downs]


def _revisions(tree: ast.Module) -> tuple[str | None, tuple[str, ...]]:
    revision: str | None = None
    down: tuple[str, ...] = ()
    for node in tree.body:
        target, value = _assignment(node)
        if target == "revision" and isinstance(value, ast.Constant) and isinstance(value.value, str):
            revision = value.value
        elif target == "down_revision" and value is not None:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                down = (value.value,)
            elif isinstance(value, ast.Tuple | ast.List):
                down = tuple(_strings(value.elts))
    return revision, down


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _strings(nodes: Iterable[ast.expr]) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _arg(call: ast.Call, index: int, keyword: str) -> str | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return (
                kw.value.value
                if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)
                else None
            )
    if len(call.args) > index:
        value = call.args[index]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def _removals(func: ast.FunctionDef, path: str) -> list[Removal]:
    """The drops and renames of one upgrade function, minus names it creates again afterwards
    (a drop then an add of the same column changes its type; nothing the code uses goes away)."""
    batches: dict[str, str] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "batch_alter_table"
                    and isinstance(item.optional_vars, ast.Name)
                ):
                    table = _arg(call, 0, "table_name")
                    if table:
                        batches[item.optional_vars.id] = table
    found: list[Removal] = []
    created: list[tuple[str, str | None, int]] = []
    for node in ast.walk(func):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        name = node.func.attr
        batch = batches.get(owner or "")
        if owner is None or (owner != "op" and batch is None):
            continue
        shift = 0 if batch else 1
        table = batch if batch else _arg(node, 0, "table_name")
        label = f"{owner}.{name}"
        if name == "add_column" and table:
            column = node.args[shift] if len(node.args) > shift else None
            if isinstance(column, ast.Call):
                col = _arg(column, 0, "name")
                created.append((table, col, node.lineno))
        elif name == "create_table" and not batch:
            created_table = _arg(node, 0, "table_name")
            if created_table:
                created.append((created_table, None, node.lineno))
        removal = _removal(node, name, label, table, shift, path, bool(batch))
        if removal is not None:
            found.append(removal)
    return [
        r
        for r in sorted(found, key=lambda r: r.line)
        if not any(
            t == r.table and c == r.column and line > r.line and r.new_name is None for t, c, line in created
        )
    ]


def _removal(
    node: ast.Call, name: str, label: str, table: str | None, shift: int, path: str, batch: bool
) -> Removal | None:
    line = node.lineno
    if name == "drop_column" and table:
        column = _arg(node, shift, "column_name")
        if column:
            return Removal(label, "column", table, column, None, path, line)
    elif name == "alter_column" and table:
        column = _arg(node, shift, "column_name")
        new = _arg(node, 99, "new_column_name")
        if column and new and new != column:
            return Removal(f"{label}(new_column_name=)", "column", table, column, new, path, line)
    elif name == "drop_table" and not batch:
        dropped = _arg(node, 0, "table_name")
        if dropped:
            return Removal(label, "table", dropped, None, None, path, line)
    elif name == "rename_table" and not batch:
        old, new = _arg(node, 0, "old_table_name"), _arg(node, 1, "new_table_name")
        if old and new:
            return Removal(label, "table", old, None, new, path, line)
    elif name == "execute" and not batch:
        return _sql_removal(node, label, path)
    return None


def _sql_removal(node: ast.Call, label: str, path: str) -> Removal | None:
    arg = node.args[0] if node.args else None
    if isinstance(arg, ast.Call) and arg.args:  # op.execute(sa.text("..."))
        arg = arg.args[0]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return None
    sql, line = arg.value, node.lineno

    def clean(name: str) -> str:
        return name.strip('"').rsplit(".", 1)[-1].strip('"')

    if m := _SQL_RENAME_TABLE.search(sql):
        return Removal(f"{label}(RENAME TO)", "table", clean(m[1]), None, clean(m[2]), path, line)
    if m := _SQL_RENAME_COLUMN.search(sql):
        return Removal(f"{label}(RENAME COLUMN)", "column", clean(m[1]), clean(m[2]), clean(m[3]), path, line)
    if (m := _SQL_DROP_COLUMN.search(sql)) and clean(m[2]).lower() not in _SQL_KEYWORDS:
        return Removal(f"{label}(DROP COLUMN)", "column", clean(m[1]), clean(m[2]), None, path, line)
    if m := _SQL_DROP_TABLE.search(sql):
        return Removal(f"{label}(DROP TABLE)", "table", clean(m[1]), None, None, path, line)
    return None


# --- what the code maps -----------------------------------------------------------------------------

_COLUMN_CALLS = {"Column", "mapped_column"}
_TABLE_BASES = {"Model", "Base", "DeclarativeBase", "db.Model"}


def snake_case(name: str) -> str:
    """Flask-SQLAlchemy's table name for a model class without __tablename__ (`UserRole` → user_role)."""
    return re.sub(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))", r"_\1", name).lower().lstrip("_")


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr
        if isinstance(func, ast.Name):
            return func.id
    return None


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def uses(modules: Iterable[PythonFile]) -> list[Use]:
    """The tables and columns the code maps: model classes (`__tablename__` or Flask-SQLAlchemy's
    name from the class name), their Column/mapped_column/Mapped attributes, and Table() calls."""
    modules = list(modules)
    classes: dict[str, tuple[PythonFile, ast.ClassDef]] = {}
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, (module, node))
    out: list[Use] = []
    for name, (module, cls) in classes.items():
        table = _table_of(name, classes, set())
        if table is None:
            continue
        out.append(Use(table, None, f"model {name}", module.path, cls.lineno))
        for attr, column, line in _columns(cls):
            out.append(Use(table, column, f"{name}.{attr}", module.path, line))
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _call_name(node) == "Table":
                out.extend(_table_uses(node, module.path))
    return out


def _table_uses(call: ast.Call, path: str) -> Iterator[Use]:
    """`db.Table("name", db.Column("c", ...), ...)`: the table and its columns."""
    table = _arg(call, 0, "name")
    if not table:
        return
    yield Use(table, None, f"Table({table!r})", path, call.lineno)
    for arg in call.args[1:]:
        if isinstance(arg, ast.Call) and _call_name(arg) == "Column":
            column = _arg(arg, 0, "name")
            if column:
                yield Use(table, column, f"Table({table!r}) column {column}", path, arg.lineno)


def _own_tablename(cls: ast.ClassDef) -> str | None:
    for stmt in cls.body:
        target, value = _assignment(stmt)
        if target == "__tablename__" and isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def _table_of(name: str, classes: dict[str, tuple[PythonFile, ast.ClassDef]], seen: set[str]) -> str | None:
    """A model class's table: its __tablename__, else its parent model's (single-table inheritance),
    else Flask-SQLAlchemy's snake_case name when it derives from db.Model and has columns."""
    if name in seen or name not in classes:
        return None
    seen.add(name)
    cls = classes[name][1]
    own = _own_tablename(cls)
    if own:
        return own
    for base in cls.bases:
        dotted = _dotted(base)
        parent = dotted.rsplit(".", 1)[-1]
        if parent in classes and parent != name and (table := _table_of(parent, classes, seen)):
            return table
        if (dotted in _TABLE_BASES or dotted.endswith(".Model")) and any(_columns(cls)):
            return snake_case(name)
    return None


def _columns(cls: ast.ClassDef) -> Iterator[tuple[str, str, int]]:
    """(attribute, column name, line) of each mapped column in a class body."""
    for stmt in cls.body:
        target, value = _assignment(stmt)
        if target is None or target.startswith("__"):
            continue
        if isinstance(value, ast.Call) and _call_name(value) in _COLUMN_CALLS:
            yield target, _arg(value, 0, "name") or target, stmt.lineno
        elif (
            value is None
            and isinstance(stmt, ast.AnnAssign)
            and "Mapped[" in ast.unparse(stmt.annotation)
            and not re.search(r"Mapped\[\s*(list|List|set|Set|\"|')", ast.unparse(stmt.annotation))
        ):
            yield target, target, stmt.lineno


def still_used(removal: Removal, found: list[Use]) -> list[Use]:
    """The code's uses of what a removal takes away: the table's models and Table()s, or the column."""
    if removal.kind == "table":
        return [u for u in found if u.table == removal.table and u.column is None]
    return [u for u in found if u.table == removal.table and u.column == removal.column]


def plain_alembic(root: Path) -> bool:
    """An alembic.ini at the project root whose script_location holds an env.py."""
    try:
        text = (root / "alembic.ini").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    found = re.search(r"(?m)^\s*script_location\s*=\s*(\S+)\s*$", text)
    location = found.group(1).replace("%(here)s", ".") if found else ""
    return bool(location) and ":" not in location and (root / location / "env.py").is_file()
