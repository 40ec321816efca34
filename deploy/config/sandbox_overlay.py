"""The environment `-e sandbox`: the overlay `deploy sandbox up` writes (its hosts, its ACME server),
applied to deploy.yaml when deploy.yaml has no environments.sandbox of its own.

It needs only config; the loader finds it in config/overlays.py's registry (config may not import
the sandbox package, which writes the file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deploy.config.document import Document, merge, parse_yaml, read_text
from deploy.config.errors import ConfigError as ConfigError
from deploy.config.errors import KeyPath as KeyPath
from deploy.config.errors import Problem as Problem
from deploy.config.errors import format_path as format_path
from deploy.config.errors import one_line as one_line
from deploy.config.model import Host

#: Where `deploy sandbox up` writes the environment that `-e sandbox` uses.
SANDBOX_ENV_NAME = "sandbox"


def sandbox_environment_file() -> Path:
    """Where `deploy sandbox up` writes the overlay that `-e sandbox` uses."""
    state = os.environ.get("DEPLOY_SANDBOX_DIR")
    if state:
        return Path(state) / "environment.yaml"
    return (
        Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local/state")))
        / "deploy/sandbox/environment.yaml"
    )


def _sandbox_acme(data: dict[str, Any], acme: Any, sandbox: Document) -> dict[str, Any]:
    """Apply the sandbox's `acme` section to an ACME tls (one with `email`), and only to that.

    `{server, ca_bundle}` (pebble, started by `deploy sandbox up`) replaces tls.acme_server and
    tls.ca_bundle; `false` (no ACME server in the sandbox) turns an ACME tls into `false`, since no
    sandbox host can reach Let's Encrypt. `tls: false` and an own cert and key are left alone.
    """
    if acme is None:
        return data
    valid = acme is False or (
        isinstance(acme, dict)
        and set(acme) == {"server", "ca_bundle"}
        and all(isinstance(v, str) and v for v in acme.values())
    )
    if not valid:
        raise ConfigError(
            [
                Problem(
                    sandbox.file,
                    sandbox.lines.get(("acme",)),
                    ("acme",),
                    "expected false or a mapping with server and ca_bundle; "
                    "run 'deploy sandbox up' again to rewrite this file",
                )
            ]
        )
    server = data.get("server")
    if not isinstance(server, dict):
        return data
    tls = server.get("tls")
    if not isinstance(tls, dict) or "email" not in tls or "cert" in tls or "key" in tls:
        return data
    if acme is False:
        new_tls: dict[str, Any] | bool = False
    else:
        new_tls = {**tls, "acme_server": acme["server"], "ca_bundle": acme["ca_bundle"]}
    return {**data, "server": {**server, "tls": new_tls}}


def _host_address(entry: Any) -> str | None:
    """The address of one entry of server.hosts as written (`host`, `user@host:port`, a mapping)."""
    try:
        return Host.model_validate(entry).address
    except ValidationError:
        return None


def _sandbox_hosts(data: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """Stand the sandbox's hosts in for deploy.yaml's, in order, so a rehearsal runs as production would:
    the i-th sandbox host takes the i-th host's roles (the last one also those of hosts the sandbox has
    no room for), and a service placed on a host (`services.*.host`) moves to the host standing in."""
    server, sandbox_server = data.get("server"), merged.get("server")
    if not isinstance(server, dict) or not isinstance(sandbox_server, dict):
        return merged
    own, stand_ins = server.get("hosts"), sandbox_server.get("hosts")
    if not isinstance(own, list) or not own or not isinstance(stand_ins, list) or not stand_ins:
        return merged
    place = {i: min(i, len(stand_ins) - 1) for i in range(len(own))}
    roles: dict[int, list[str]] = {}
    for i, entry in enumerate(own):
        theirs = entry.get("roles") if isinstance(entry, dict) else None
        for role in theirs if isinstance(theirs, list) else ["web"]:
            if role not in roles.setdefault(place[i], []):
                roles[place[i]].append(role)
    if any(isinstance(entry, dict) and "roles" in entry for entry in own):
        sandbox_server = {
            **sandbox_server,
            "hosts": [
                {"address": address, "roles": roles.get(j, ["web"])} if isinstance(address, str) else address
                for j, address in enumerate(stand_ins)
            ],
        }
    moved = {_host_address(entry): stand_ins[place[i]] for i, entry in enumerate(own)}
    services = merged.get("services")
    if isinstance(services, dict):
        services = {
            name: {**service, "host": moved.get(service["host"], service["host"])}
            if isinstance(service, dict) and isinstance(service.get("host"), str)
            else service
            for name, service in services.items()
        }
        return {**merged, "server": sandbox_server, "services": services}
    return {**merged, "server": sandbox_server}


def apply(data: dict[str, Any]) -> dict[str, Any] | None:
    """deploy.yaml's data with the sandbox's overlay applied; None when `deploy sandbox up` has not
    written one (no file)."""
    sandbox_file = sandbox_environment_file()
    if not sandbox_file.is_file():
        return None
    sandbox = parse_yaml(read_text(sandbox_file), str(sandbox_file))
    overlay = dict(sandbox.data) if isinstance(sandbox.data, dict) else {}
    acme = overlay.pop("acme", None)
    return _sandbox_hosts(data, _sandbox_acme(merge(data, overlay), acme, sandbox))
