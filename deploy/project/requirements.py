"""What a release's virtualenv installs: requirements files with their includes, or pyproject.toml's list.

Pure functions over a reader of project files (relative path -> bytes, or None when absent), so the
same rules serve the artifact (files from the commit) and rendering (files on disk). Includes
(`-r`, `-c` and their long forms) are read relative to the including file, as pip reads them. A
pyproject.toml contributes its static `[project].dependencies` list (or a Poetry project's
`[tool.poetry.dependencies]`, pinned to its poetry.lock: deploy.project.poetry), turned into a
requirements file.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

from deploy.project.poetry import poetry_dependencies

Reader = Callable[[str], bytes | None]

#: `-r FILE`, `-rFILE`, `--requirement FILE`, `--requirement=FILE`, and the same for constraints.
_INCLUDE = re.compile(
    r"^(?P<option>-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(?P<target>\S+)"
)


class RequirementsError(Exception):
    """A requirements file or pyproject.toml cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Include:
    """One `-r`/`-c` line: where it is, what it says, and the project path it points at."""

    file: str
    line: int
    option: str
    target: str
    path: str


@dataclass(frozen=True)
class RequirementSet:
    """Everything pip needs to install the app's dependencies, and the key of the virtualenv."""

    #: app.requirements, relative to the project.
    entry: str
    #: Every requirements file involved (the entry and what it includes), by project path.
    files: dict[str, bytes]
    #: For pyproject.toml: its dependencies as a requirements file (pip installs this instead).
    generated: bytes | None = None

    @property
    def included(self) -> list[str]:
        """The files the entry includes, directly or not (sorted)."""
        return sorted(path for path in self.files if path != self.entry)

    @property
    def key(self) -> bytes:
        """What the virtualenv's hash covers: every byte that changes what gets installed."""
        if self.generated is not None:
            return b"pyproject.toml dependencies\0" + self.generated
        key = self.files.get(self.entry, b"")
        for path in self.included:
            key += b"\0" + path.encode() + b"\0" + self.files[path]
        return key

    @property
    def install_file(self) -> str:
        """The file `pip install -r` reads, relative to the project (or to the wheelhouse folder)."""
        return "requirements.txt" if self.generated is not None else self.entry


def is_pyproject(entry: str) -> bool:
    return posixpath.basename(entry).endswith(".toml")


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequirementsError(f"{path}: not UTF-8 text (byte {exc.start}): pip cannot read it") from None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, content) with comments removed and backslash continuations joined, as pip does."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw if not raw.lstrip().startswith("#") else ""
        line = re.sub(r"(^|\s+)#.*$", "", line)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def includes(path: str, text: str) -> list[Include]:
    """The `-r`/`-c` lines of one requirements file, each resolved relative to that file."""
    out: list[Include] = []
    here = posixpath.dirname(path)
    for number, line in _logical_lines(text):
        match = _INCLUDE.match(line)
        if not match:
            continue
        option, target = match.group("option"), match.group("target")
        where = f"{path}:{number}: {option} {target}"
        if re.match(r"^[a-z][a-z0-9+.-]*://", target):
            raise RequirementsError(
                f"{where}: a URL cannot be shipped to hosts that have no package index; "
                "save that file in the project and include it by its path"
            )
        if target.startswith(("/", "~")):
            raise RequirementsError(
                f"{where}: an absolute path is not part of the project; include it by a path "
                f"relative to {path}"
            )
        resolved = posixpath.normpath(posixpath.join(here, target))
        if resolved == ".." or resolved.startswith("../"):
            raise RequirementsError(
                f"{where}: points outside the project; deploy ships only the project's files"
            )
        out.append(Include(path, number, option, target, resolved))
    return out


def pyproject_dependencies(path: str, data: bytes, lock: bytes | None = None) -> list[str]:
    """`[project].dependencies` of a pyproject.toml, else a Poetry project's dependencies (pinned to
    `lock`, its poetry.lock, when given), or a RequirementsError saying why not."""
    try:
        document = tomllib.loads(_text(path, data))
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsError(f"{path}: not valid TOML: {exc}") from None
    project = document.get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        try:
            poetry = poetry_dependencies(path, document, lock)
        except ValueError as exc:
            raise RequirementsError(str(exc)) from None
        if poetry is not None:
            return poetry
    if not isinstance(project, dict):
        raise RequirementsError(
            f"{path}: has no [project] table: list the app's dependencies in [project].dependencies, "
            "or point app.requirements at a requirements.txt"
        )
    dynamic = project.get("dynamic") or []
    if "dependencies" in dynamic:
        raise RequirementsError(
            f"{path}: [project].dependencies is dynamic (computed by the build backend); deploy reads "
            "a static list: write the dependencies into [project].dependencies, or point "
            "app.requirements at a requirements.txt"
        )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise RequirementsError(f"{path}: [project].dependencies must be a list of strings")
    return [d.strip() for d in dependencies if d.strip()]


def resolve(entry: str, read: Reader) -> RequirementSet:
    """The requirement set of `entry` (app.requirements): its includes followed, or its pyproject list."""
    data = read(entry)
    if data is None:
        raise RequirementsError(f"{entry} (app.requirements) does not exist")
    if is_pyproject(entry):
        dependencies = pyproject_dependencies(
            entry, data, read(posixpath.join(posixpath.dirname(entry), "poetry.lock"))
        )
        generated = "".join(f"{d}\n" for d in dependencies).encode()
        return RequirementSet(entry, {entry: data}, generated)
    files: dict[str, bytes] = {}
    queue: list[tuple[str, bytes]] = [(entry, data)]
    while queue:
        path, content = queue.pop(0)
        if path in files:
            continue
        files[path] = content
        for include in includes(path, _text(path, content)):
            if include.path in files:
                continue
            found = read(include.path)
            if found is None:
                raise RequirementsError(
                    f"{include.file}:{include.line}: {include.option} {include.target}: "
                    f"{include.path} does not exist (includes are read relative to {include.file})"
                )
            queue.append((include.path, found))
    return RequirementSet(entry, files)


@dataclass(frozen=True)
class TopLevel:
    """The app's own requirement lines, and the constraints files that apply to them."""

    #: (where, line): 'requirements/prod.txt:3' and the logical line as pip reads it, options and all.
    lines: list[tuple[str, str]]
    #: Constraints files (`-c`) by project path.
    constraints: list[str]


def top_level(requirements: RequirementSet) -> TopLevel:
    """The requirement lines pip installs: the entry's and those of the files it includes with `-r`
    (not `-c`: constraints only narrow versions). Option lines (`--index-url`, `-e`) are left out."""
    if requirements.generated is not None:
        text = requirements.generated.decode()
        return TopLevel([(requirements.entry, line) for _, line in _logical_lines(text)], [])
    lines: list[tuple[str, str]] = []
    constraints: list[str] = []
    seen: set[str] = set()
    queue = [requirements.entry]
    while queue:
        path = queue.pop(0)
        if path in seen or path not in requirements.files:
            continue
        seen.add(path)
        text = _text(path, requirements.files[path])
        for include in includes(path, text):
            if include.option in ("-r", "--requirement"):
                queue.append(include.path)
            elif include.path not in constraints:
                constraints.append(include.path)
        for number, line in _logical_lines(text):
            if not line.startswith("-"):
                lines.append((f"{path}:{number}", line))
    return TopLevel(lines, constraints)


def constraint_lines(requirements: RequirementSet, top: TopLevel) -> list[tuple[str, str]]:
    """The requirement lines of the constraints files (`-c`) that apply, as (where, line) like `top.lines`."""
    out: list[tuple[str, str]] = []
    for path in top.constraints:
        if path in requirements.files:
            text = _text(path, requirements.files[path])
            out.extend((f"{path}:{n}", line) for n, line in _logical_lines(text) if not line.startswith("-"))
    return out


def src_root(files: set[str] | frozenset[str], wsgi: str) -> str | None:
    """'src' when the WSGI module lives under src/ (a src layout) and not at the top; else None."""
    module = wsgi.split(":", 1)[0].strip().split(".", 1)[0]
    if not module:
        return None

    def has(prefix: str) -> bool:
        return f"{prefix}{module}.py" in files or any(f.startswith(f"{prefix}{module}/") for f in files)

    return "src" if not has("") and has("src/") else None


def files_to_copy(entry: str, read: Reader) -> list[str]:
    """The requirements files a Docker build copies: the entry and its includes (just the entry when
    they cannot be read; `deploy push` names the problem)."""
    if is_pyproject(entry):
        return [entry]
    try:
        found = resolve(entry, read)
    except RequirementsError:
        return [entry]
    return [entry, *found.included]


def environment(python_version: str, machine: str) -> dict[str, str]:
    """The marker environment of a CPython `python_version` (full, e.g. 3.11.2) on Linux `machine`.

    The host's kernel release and version are not known here: markers on them compare to "".
    """
    minor = ".".join(python_version.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": python_version,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_version,
        "python_version": minor,
        "sys_platform": "linux",
    }
