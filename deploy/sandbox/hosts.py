"""A sandbox host as the rest of deploy sees it: its addresses, names and SSH command line, the tools a
sandbox needs on this machine, and the `-e sandbox` overlay that points deploy.yaml at the hosts."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from deploy.sandbox import acme as sandbox_acme
from deploy.sandbox.rootfs import SandboxError

#: The account `deploy` uses on sandbox hosts.
SSH_USER = "root"

#: Tool -> Debian package that provides it.
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "umount": "mount",
}


def check_prerequisites(tools: Sequence[str] = tuple(TOOLS)) -> None:
    """Raise SandboxError (code 2) naming what is missing and how to install it: root, then tools."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "deploy sandbox needs root (it creates network namespaces, mounts and containers): "
            "run it as root or with sudo"
        )
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({TOOLS[tool] for tool in missing})
        problems.append(
            f"missing {', '.join(missing)}: install with 'sudo apt-get install -y {' '.join(packages)}'"
        )
    if problems:
        raise SandboxError("\n".join(problems), code=2)


@dataclass(frozen=True)
class SandboxHost:
    """One booted host, and everything needed to reach it over SSH."""

    name: str
    address: str
    gateway: str
    netns: str
    veth: str
    machine_dir: str
    mode: str
    key: str
    known_hosts: str
    environment_file: str
    pid: int | None = None
    user: str = SSH_USER
    port: int = 22

    @property
    def root(self) -> Path:
        """The host's root filesystem as seen from this machine."""
        return Path(self.machine_dir) / "root"

    def ssh_argv(self, command: Sequence[str] | None = None, *, batch: bool = True) -> list[str]:
        """The ssh command line that reaches this host with host-key verification on."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            self.key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.port),
        ]
        if batch:
            argv += ["-o", "BatchMode=yes"]
        argv.append(f"{self.user}@{self.address}")
        if command:
            argv += ["--", shlex.join(command)]
        return argv


def environment_text(
    hosts: Sequence[SandboxHost],
    key: Path,
    known_hosts: Path,
    acme: sandbox_acme.AcmeServer | None,
) -> str:
    """The overlay `-e sandbox` lays over deploy.yaml: the hosts, SSH settings, and the ACME server.

    The `acme` section is not a deploy.yaml key: the loader moves it into `server.tls` only when the
    effective tls is ACME (`email`), so `tls: false` and an own cert and key stay as they are.
    """
    environment = {
        "server": {
            "hosts": [h.address for h in hosts],
            # Every SSH setting that could lead elsewhere is set: a deploy.yaml's own port or
            # jump host must not apply to the sandbox.
            "ssh": {
                "user": SSH_USER,
                "port": 22,
                "key": str(key),
                "known_hosts": str(known_hosts),
                "proxy_jump": None,
            },
        },
        "acme": sandbox_acme.overlay_section(acme),
    }
    if acme is not None:
        about = (
            f"# acme: tls: {{email: ...}} gets its certificates from pebble, a local ACME server at\n"
            f"# {acme.directory} (every name resolves to {acme.default_address} for it); its issuing\n"
            f"# root is {acme.root_file}.\n"
            "# tls: false and your own cert and key stay as they are.\n"
        )
    else:
        about = (
            "# acme: false: no ACME server in this sandbox (pebble not installed, or --no-acme), so\n"
            "# tls: {email: ...} becomes tls: false here (plain HTTP, no certbot). Own certs stay.\n"
        )
    return (
        "# Written by 'deploy sandbox up' for '-e sandbox'; 'deploy sandbox down' removes it.\n"
        + "# Hosts: "
        + ", ".join(f"{h.name}={h.address}" for h in hosts)
        + "\n"
        + about
        + yaml.safe_dump(environment, sort_keys=False)
    )
