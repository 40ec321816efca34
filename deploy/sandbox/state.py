"""The sandbox's state file: what `up` made, written before and while it is made so that `down` can undo
a crashed `up`, and read back only when every name in it is one this sandbox would make."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.sandbox import acme as sandbox_acme
from deploy.sandbox.hosts import SSH_USER, SandboxHost
from deploy.sandbox.processes import is_pid
from deploy.sandbox.rootfs import SandboxError

STATE_VERSION = 1
HOST_NAME = re.compile(r"sandbox-([1-9][0-9]?)")


@dataclass
class State:
    """What `up` made: its status, root filesystem, hosts and ACME server."""

    version: int = STATE_VERSION
    status: str = "starting"
    rootfs: str = ""
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: The ACME server (pebble) `up` started: `sandbox_acme.AcmeServer` fields, pids included.
    acme: dict[str, Any] | None = None


@dataclass(frozen=True)
class Names:
    """The names and paths one sandbox makes: a state file naming anything else is not its own."""

    tag: str
    machines_dir: Path
    key: Path
    known_hosts: Path
    environment_file: Path
    acme_dir: Path


def read_state(path: Path, names: Names, say: Callable[[str], None]) -> State | None:
    """The state file's record; None when there is none (or it is unreadable: said); SandboxError (code 2)
    when it names anything that is not this sandbox's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        say(f"warning: ignoring unreadable {path}: {exc}")
        return None
    problem = state_problem(data, names)
    if problem is not None:
        raise SandboxError(
            f"{path} does not describe this sandbox ({problem}): nothing was stopped or "
            "removed; the sandbox acts as root only on the names it makes. If the file is damaged, "
            "move it away and run 'deploy sandbox down' again (it finds this sandbox's leftovers by "
            "name)",
            code=2,
        )
    return State(**data)


def state_problem(data: object, names: Names) -> str | None:
    """What in a state file's data is not this sandbox's (each name: its pattern and tag), or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    unknown = sorted(set(data) - set(State.__dataclass_fields__))
    if unknown:
        return f"unknown key {unknown[0]!r}"
    if data.get("version") != STATE_VERSION or data.get("status") not in ("starting", "up"):
        return f"version {data.get('version')!r}, status {data.get('status')!r}"
    if not isinstance(data.get("rootfs", ""), str) or not isinstance(data.get("hosts", []), list):
        return "rootfs or hosts of the wrong type"
    seen: set[str] = set()
    for number, host in enumerate(data.get("hosts", [])):
        problem = host_problem(host, names)
        if problem is not None:
            return f"hosts[{number}].{problem}"
        if host["name"] in seen:
            return f"hosts[{number}].name {host['name']!r} appears twice"
        seen.add(host["name"])
    acme = data.get("acme")
    if acme is not None:
        if not isinstance(acme, dict) or set(acme) - set(sandbox_acme.AcmeServer.__dataclass_fields__):
            return "acme is not an ACME server's record"
        if acme.get("workdir") != str(names.acme_dir):
            return f"acme.workdir is {acme.get('workdir')!r}, not {str(names.acme_dir)!r}"
        pids = acme.get("pids", [])
        if not isinstance(pids, list) or not all(is_pid(p) for p in pids):
            return "acme.pids holds something other than process ids"
        if not all(isinstance(acme.get(k), str) for k in ("listen", "default_address")):
            return "acme.listen or acme.default_address is not text"
    return None


def host_problem(host: object, names: Names) -> str | None:
    """What in one host's record is not this sandbox's (names made from its tag), or None."""
    fields = SandboxHost.__dataclass_fields__
    if not isinstance(host, dict):
        return "* is not a JSON object"
    unknown = sorted(set(host) - set(fields))
    if unknown:
        return f"{unknown[0]} is not a host's key"
    name = host.get("name")
    match = HOST_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return f"name is {name!r}, not sandbox-N"
    expected: dict[str, object] = {
        "netns": f"deploy-{names.tag}-{name}",
        "veth": f"dsb{names.tag}-{match.group(1)}",
        "machine_dir": str(names.machines_dir / match.group(0)),
        "key": str(names.key),
        "known_hosts": str(names.known_hosts),
        "environment_file": str(names.environment_file),
        "user": SSH_USER,
        "port": 22,
    }
    for key, value in expected.items():
        if host.get(key, fields[key].default) != value:
            return f"{key} is {host.get(key)!r}, not this sandbox's {value!r}"
    if host.get("mode") not in ("overlay", "copy"):
        return f"mode is {host.get('mode')!r}, not overlay or copy"
    for key in ("address", "gateway"):
        try:
            ipaddress.IPv4Address(host.get(key))
        except (ipaddress.AddressValueError, ValueError, TypeError):
            return f"{key} is {host.get(key)!r}, not an IPv4 address"
    if host.get("pid") is not None and not is_pid(host.get("pid")):
        return f"pid is {host.get('pid')!r}, not a process id"
    return None


def write_state(path: Path, state: State) -> None:
    """Replace the state file in one step (a temporary file renamed over it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
