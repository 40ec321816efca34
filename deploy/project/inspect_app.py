"""The effective configuration: import the app factory in a subprocess under the production environment.

Opt-in (`deploy check --import`), because it runs the user's code. The child is `inspect_child.py`, a
standalone script run with the project's own interpreter (`--python`, or the project's .venv/venv),
in a temporary copy of the project without `.env` (push never ships it, and whatever the import
writes, such as a logs/ folder, lands in the copy). It prints one JSON document of safe facts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.config.loader import parse_dotenv
from deploy.config.secretfiles import is_secret, is_secret_name
from deploy.config.secrets import WEAK
from deploy.project.inspect_child import MARKER, PLACEHOLDER_PREFIX, WEAK_ENV
from deploy.project.scan import NEVER_SHIPPED, TOOL_DIRS

if TYPE_CHECKING:
    from deploy.config.model import Config

TIMEOUT = 60
CHILD = Path(__file__).with_name("inspect_child.py")
#: Never copied for the import, as push never ships them (deploy.project.scan.NEVER_SHIPPED, plus TOOL_DIRS);
#: nor is any secret file (deploy.config.secretfiles).
_NOT_COPIED = NEVER_SHIPPED | TOOL_DIRS
_MAX_COPY_BYTES = 200 * 1024**2
#: Variables removed from the import's environment: they switch on debug mode on a laptop.
DEBUG_VARIABLES = ("FLASK_DEBUG", "FLASK_ENV", "DEBUG", "WERKZEUG_RUN_MAIN")


@dataclass(frozen=True)
class Effective:
    """What the imported app reported, or why it could not be imported."""

    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    secret_key: dict[str, Any] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)
    placeholders: tuple[str, ...] = ()
    #: Where each app.secrets value came from: "environment", ".env" or "placeholder".
    sources: dict[str, str] = field(default_factory=dict)
    #: What to try when the import failed.
    hint: str | None = None
    #: The class of an app that imported but is not Flask (FastAPI, Starlette): no config to read.
    other: str | None = None


def placeholder(name: str) -> str:
    """A stand-in for a missing secret, shaped so that libraries parsing it at import time accept it.

    Database URLs become an in-memory SQLite database and Redis URLs a local address (never connected
    at import); a Sentry DSN stays empty (the SDK is then off and sends nothing); anything else is
    random text that the strength checks recognise as a placeholder.
    """
    upper = name.upper()
    if re.search(r"(DATABASE|DB|SQLALCHEMY).*(URL|URI)$", upper) or upper.endswith("_URI"):
        return "sqlite://"
    if "REDIS" in upper and upper.endswith(("URL", "URI")):
        return "redis://localhost:6379/0"
    if upper.endswith("DSN"):
        return ""
    return PLACEHOLDER_PREFIX + secrets.token_hex(16)


def production_environment(
    root: Path, config: Config | None
) -> tuple[dict[str, str], tuple[str, ...], dict[str, str]]:
    """The environment of the import: (variables, placeholders used, source of each app.secrets value).

    With deploy.yaml it is what push gives the service: your environment (so CI can export production
    values), app.env, and each app.secrets value from the environment or else .env (as push reads them);
    other .env lines stay out, as on the server. Without deploy.yaml there is no list of secrets, so the
    whole .env is used. Missing secrets get a placeholder; FLASK_DEBUG and friends are removed.
    """
    dotenv = parse_dotenv(root / ".env")
    env = dict(os.environ)
    placeholders: list[str] = []
    sources: dict[str, str] = {}
    if config is None:
        env.update(dotenv)
    else:
        env.update(config.app.env)
        for name in config.app.secrets:
            if os.environ.get(name) is not None:
                sources[name] = "environment"
            elif name in dotenv:
                env[name] = dotenv[name]
                sources[name] = ".env"
            else:
                env[name] = placeholder(name)
                sources[name] = "placeholder"
                placeholders.append(name)
    for name in DEBUG_VARIABLES:
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env, tuple(placeholders), sources


def project_python(root: Path) -> Path | None:
    """The interpreter of the project's own virtualenv (.venv or venv), if there is one."""
    for folder in (".venv", "venv"):
        found = _venv_python(root / folder)
        if found is not None:
            return found
    return None


def active_python() -> Path | None:
    """The interpreter of the activated virtualenv ($VIRTUAL_ENV) when it is not deploy's own (deploy
    installed with pipx or system-wide, the project's environment activated elsewhere)."""
    active = os.environ.get("VIRTUAL_ENV")
    if not active or Path(active).resolve() == Path(sys.prefix).resolve():
        return None
    return _venv_python(Path(active))


def _venv_python(folder: Path) -> Path | None:
    for candidate in (folder / "bin" / "python", folder / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def _project_files(root: Path) -> Iterator[Path]:
    """The files push would ship: git's tracked and untracked-but-not-ignored files, or a filtered walk."""
    git = shutil.which("git")
    if git and (root / ".git").exists():
        proc = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode == 0:
            for rel in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
                if rel and not _NOT_COPIED & set(Path(rel).parts) and not is_secret(rel):
                    yield root / rel
            return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name in _NOT_COPIED or is_secret_name(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                if not (entry / "pyvenv.cfg").exists():
                    stack.append(entry)
            else:
                yield entry


def copy_project(root: Path, dest: Path) -> None:
    """Copy what push would ship (no secret files, no .git, no virtualenvs) into `dest`."""
    total = 0
    for path in _project_files(root):
        rel = path.relative_to(root)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if path.is_symlink():
                target.symlink_to(os.readlink(path))
            elif path.is_file():
                total += path.stat().st_size
                if total > _MAX_COPY_BYTES:
                    raise OSError(f"the project is larger than {_MAX_COPY_BYTES // 1024**2} MiB")
                shutil.copy2(path, target)
        except FileNotFoundError:
            continue


def inspect(root: Path, spec: str, config: Config | None, python: str | None = None) -> Effective:
    """Import `spec` (`pkg:create_app()` or `module:app`) in a child process and read what it reports."""
    env, placeholders, sources = production_environment(root, config)
    health = config.app.health if config is not None else "/health"
    host = config.primary_domain if config is not None else "localhost"
    interpreter = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="deploy-check-import-") as tmp:
        copy = Path(tmp) / root.name
        try:
            copy_project(root, copy)
        except OSError as exc:
            return Effective(error=f"cannot copy the project for the import: {exc}")
        paths = [str(copy)] + ([str(copy / "src")] if (copy / "src").is_dir() else [])
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH", "")])])
        env[WEAK_ENV] = json.dumps(sorted(WEAK))
        try:
            proc = subprocess.run(
                [interpreter, str(CHILD), spec, health, host],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Effective(error=f"importing {spec} took longer than {TIMEOUT} s", sources=sources)
        except OSError as exc:
            return Effective(error=f"cannot start {interpreter}: {exc.strerror or exc}", sources=sources)
    _, found, payload = proc.stdout.rpartition(MARKER)
    if not found:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return Effective(error=f"importing {spec} failed: {tail[0]}", sources=sources)
    data = json.loads(payload)
    if data.get("error"):
        error = str(data["error"])
        return Effective(
            error=error,
            placeholders=placeholders,
            sources=sources,
            hint=_hint(error, str(data.get("error_type", "")), placeholders, python),
        )
    return Effective(
        other=data.get("other"),
        config=data.get("config", {}),
        secret_key=data.get("secret_key", {}),
        routes=data.get("routes", []),
        health=data.get("health", {}),
        placeholders=placeholders,
        sources=sources,
    )


def _hint(error: str, kind: str, placeholders: tuple[str, ...], python: str | None) -> str:
    if kind in ("ModuleNotFoundError", "ImportError") and python is None:
        return (
            "a package is missing from deploy's own Python: run with --python PATH/TO/VENV/bin/python "
            "(or create the project's .venv, or activate its virtualenv)"
        )
    named = [p for p in placeholders if p in error]
    if named:
        return (
            f"{', '.join(named)} had no value and got a placeholder; give the real value in the "
            "environment or .env"
        )
    if kind == "KeyError" or "environment variable" in error.lower() or "not set" in error.lower():
        return (
            "a variable the app needs is missing: list it in deploy.yaml app.secrets (value in the "
            "environment or .env) or app.env; push would start the app without it too"
        )
    return "run the app factory yourself with the production variables to see the whole traceback"
