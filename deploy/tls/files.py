"""The local files `tls` names (own certificate, key, CA bundle), read and checked before any host."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from deploy.config.loader import ConfigError, KeyPath, Problem, line_of, read_bytes
from deploy.config.model import Config
from deploy.tls import steps as tls
from deploy.tls.steps import TLSFiles


def _line_of(config_path: Path, environment: str | None, key: str) -> tuple[int | None, KeyPath]:
    """The line where `server.tls.<key>` is written (in the environment's overlay if it is there)."""
    return line_of(config_path, environment, ("server", "tls", key))


def read_tls_files(config: Config, config_path: str | Path) -> TLSFiles:
    """Read the files `tls.cert`, `tls.key` and `tls.ca_bundle` name (relative to deploy.yaml's folder).

    A missing or unusable file is a ConfigError naming the file, line and key (exit code 2).
    """
    settings = tls.tls_settings(config)
    if settings is None:
        return tls.TLSFiles()
    config_file = Path(config_path)
    project = config_file.resolve().parent
    problems: list[Problem] = []
    contents: dict[str, bytes | None] = {"cert": None, "key": None, "ca_bundle": None}
    for key in contents:
        name = getattr(settings, key)
        if name is None:
            continue
        # os.path's expanduser leaves '~nobody-known/x' as it is (pathlib's raised RuntimeError).
        file = Path(os.path.expanduser(name))
        file = file if file.is_absolute() else project / file
        try:
            data = read_bytes(file)
        except ConfigError as exc:
            line, path = _line_of(config_file, config.environment, key)
            why = exc.problems[0].message.removeprefix("cannot read this file: ")
            problems.append(Problem(str(config_file), line, path, f"cannot read {file}: {why}"))
            continue
        if key != "key" and b"-----BEGIN CERTIFICATE-----" not in data:
            line, path = _line_of(config_file, config.environment, key)
            problems.append(Problem(str(config_file), line, path, f"{file} holds no PEM certificate"))
        contents[key] = data
    if problems:
        raise ConfigError(problems)
    files = tls.TLSFiles(cert=contents["cert"], key=contents["key"], ca_bundle=contents["ca_bundle"])
    if files.cert is not None and files.key is not None:
        found = tls.check_own_certificate(config, files, datetime.datetime.now(datetime.UTC))
        if found:
            line, path = _line_of(config_file, config.environment, "cert")
            raise ConfigError([Problem(str(config_file), line, path, message) for message in found])
    return files
