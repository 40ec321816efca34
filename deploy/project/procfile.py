"""A project's Procfile (Heroku, Dokku, Foreman): its web line's WSGI target and its other processes."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

#: `module:attr` or a factory call `module:create_app()`, as Gunicorn takes it.
_WSGI = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*(\([^;`$]*\))?$")
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.*)$")


@dataclass
class Procfile:
    """What a Procfile says: the web process's WSGI target (when Gunicorn serves it) and the rest."""

    wsgi: str | None = None
    #: deploy.yaml process name -> command, in the file's order (names lower-cased, `_` as `-`).
    processes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def process_name(name: str) -> str:
    """A Procfile process type as a deploy.yaml process name (`worker_high` -> `worker-high`)."""
    return name.lower().replace("_", "-")[:31]


def gunicorn_target(command: str) -> str | None:
    """The WSGI target of a `gunicorn ...` command line, or None when it is not Gunicorn."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or words[0].rsplit("/", 1)[-1] != "gunicorn":
        return None
    targets = [w for w in words[1:] if not w.startswith("-") and _WSGI.fullmatch(w)]
    return targets[-1] if targets else None


def read_procfile(root: Path) -> Procfile | None:
    """The project's Procfile, or None when it has none."""
    path = root / "Procfile"
    if not path.is_file():
        return None
    out = Procfile()
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            out.notes.append(f"Procfile: skipped a line that is not 'name: command': {line[:60]!r}")
            continue
        name, command = match.group(1), match.group(2).strip()
        if name == "web":
            out.wsgi = gunicorn_target(command)
            if out.wsgi is None:
                out.notes.append(
                    f"Procfile: the web line is not Gunicorn serving a WSGI app ({command[:60]!r}); "
                    "deploy serves app.wsgi with Gunicorn"
                )
        elif name == "release":
            out.notes.append(f"Procfile: a release line ({command[:60]!r}): put it in app.release")
        elif command:
            out.processes[process_name(name)] = command
    return out
