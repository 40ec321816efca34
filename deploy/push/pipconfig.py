"""The user's pip settings, passed on to uv when uv builds the wheelhouse (deploy.push.uvwheelhouse).

pip reads its configuration files and `PIP_*` environment variables for every download deploy runs;
uv reads neither. This module reads the settings pip would use for `pip download` (the same files,
in pip's order, the `[global]` then `[download]` sections, then the environment) and turns them into
uv's options. A setting uv cannot be given the same way makes `uv_options` return None with the
reason, and the wheelhouse is then built with pip as before.
"""

from __future__ import annotations

import configparser
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: Settings that only change pip's output or its own behaviour, not which files it downloads.
_HARMLESS = frozenset(
    {
        "disable-pip-version-check",
        "no-input",
        "progress-bar",
        "quiet",
        "verbose",
        "retries",
        "no-color",
        "no-python-version-warning",
        "root-user-action",
        "cache-dir",
        "no-cache-dir",
        "log",
    }
)
_LISTS = {"index-url", "extra-index-url", "find-links", "constraint"}


@dataclass
class UvSettings:
    """uv's options and environment that make it read the indexes pip would read."""

    options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: The CA bundle pip verifies HTTPS with (`cert`), also used for the downloads.
    cert: str | None = None
    timeout: float = 60.0


def config_files(environ: dict[str, str]) -> list[Path]:
    """pip's configuration files in the order pip reads them (later ones win)."""
    configured = environ.get("PIP_CONFIG_FILE")
    if configured == os.devnull:
        return []
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(Path("/etc/pip.conf"))
    home = Path(environ.get("HOME") or Path.home())
    files.append(home / ".pip" / "pip.conf")
    files.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    if configured:
        files.append(Path(configured))
    return files


def pip_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The settings `pip download` runs with: {name: value}, files then environment."""
    env = dict(os.environ if environ is None else environ)
    settings: dict[str, str] = {}
    for path in config_files(env):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            settings["unreadable config " + str(path)] = ""
            continue
        for section in ("global", "download"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    settings[key.replace("_", "-")] = value
    for name, value in env.items():
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            settings[name[4:].lower().replace("_", "-")] = value
    return settings


def _true(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def uv_options(environ: dict[str, str] | None = None) -> tuple[UvSettings | None, str]:
    """uv's options for pip's settings, or (None, why uv cannot be given them)."""
    env = dict(os.environ if environ is None else environ)
    out = UvSettings()
    for key, value in pip_settings(env).items():
        if key in _HARMLESS:
            continue
        if key in _LISTS:
            for item in value.split():
                if "@" in urlsplit(item).netloc:
                    return None, f"pip's {key} has credentials, which deploy's downloads do not send"
                out.options += [f"--{key}", item]
        elif key == "no-index":
            if _true(value):
                out.options.append("--no-index")
        elif key == "trusted-host":
            out.options += [o for host in value.split() for o in ("--allow-insecure-host", host)]
        elif key == "cert":
            out.cert = value
            out.env["SSL_CERT_FILE"] = value
        elif key in {"timeout", "default-timeout"}:
            try:
                out.timeout = float(value)
            except ValueError:
                return None, f"pip's {key} is not a number"
            out.env["UV_HTTP_TIMEOUT"] = str(int(out.timeout))
        else:
            return None, f"pip's setting {key} has no counterpart in uv"
    if (Path(env.get("HOME") or Path.home()) / ".netrc").is_file():
        return None, "~/.netrc may hold index credentials, which deploy's downloads do not send"
    return out, ""
