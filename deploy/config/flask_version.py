"""Which Flask a project declares, and the `flask` command line that version understands.

`flask --app X` exists from Flask 2.2; older Flask reads the app from `$FLASK_APP` only. Read by
deploy.yaml's validation (a release command must fit the app's Flask) and by `deploy init`.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

#: `flask --app X` exists from Flask 2.2; older Flask reads the app from $FLASK_APP only.
FLASK_APP_OPTION = "2.2"
#: Every Flask release number from 2.2 on that a specifier could admit (and some to come).
_PROBES = [f"{a}.{b}.{c}" for a in (2, 3, 4, 5) for b in range(21) for c in range(12) if (a, b) >= (2, 2)]
_FLASK_REQ = re.compile(r"""(?im)^\s*["']?\s*flask\s*(\[[^\]]*\])?\s*([<>=!~][^;#"'\n]*)""")
_SETUP_PIN = re.compile(r"""["']\s*flask\s*(\[[^\]]*\])?\s*([<>=!~][^"';]*)["']""", re.I)


def declared_flask(root: Path) -> tuple[str, str] | None:
    """(where, specifier) of the Flask version the project declares: its requirements files
    (requirements*.txt, requirements/*.txt), pyproject.toml, setup.cfg or setup.py; None if none pins it."""
    files = [
        *sorted(root.glob("requirements*.txt")),
        *sorted((root / "requirements").glob("*.txt")),
        *(root / name for name in ("pyproject.toml", "setup.cfg", "setup.py")),
    ]
    for path in files:
        try:
            text = (
                path.read_text(encoding="utf-8") if path.is_file() and path.stat().st_size < 1 << 20 else ""
            )
        except (OSError, UnicodeDecodeError):
            continue
        pattern = _SETUP_PIN if path.suffix in (".py", ".toml") else _FLASK_REQ
        for match in pattern.finditer(text):
            spec = match.group(2).strip().rstrip("\\").strip().rstrip(",").strip()
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                continue
            return path.relative_to(root).as_posix(), spec
    return None


def flask_has_app_option(root: Path) -> bool:
    """Whether the project's Flask knows `flask --app` (2.2+): False only when the declared version
    excludes every release from 2.2 on (flask==2.1.3, flask<2.2, flask~=2.0.1); unpinned: the newest."""
    declared = declared_flask(root)
    if declared is None:
        return True
    spec = SpecifierSet(declared[1])
    return any(spec.contains(v, prereleases=False) for v in _PROBES)


def flask_command(root: Path, module: str, args: str) -> str:
    """A `flask` command line for the app in `module` that the project's Flask understands:
    `flask --app M ARGS` (Flask 2.2+) or `FLASK_APP=M flask ARGS` (older)."""
    return (
        f"flask --app {module} {args}" if flask_has_app_option(root) else f"FLASK_APP={module} flask {args}"
    )
