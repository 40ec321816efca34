"""The project's files other than Python: HTML forms and their CSRF tokens, Dockerfiles, `.env` lines and
requirements."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The one list of folders that are not the project's own files: version control, virtual environments,
#: caches and deploy's state. Push never ships these (deploy.push.artifact), the import never copies them.
#: Here, not in deploy.project.scan: a push imports this list, not the whole scan (#19, start time).
NEVER_SHIPPED = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".deploy", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)

_FORM_TAG = re.compile(r"<form\b[^>]*>", re.I)
_POST_METHOD = re.compile(r"""method\s*=\s*["']?post""", re.I)


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
