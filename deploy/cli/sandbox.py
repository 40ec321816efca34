"""The `deploy sandbox` commands: boot, list, enter and remove local Debian 12 test hosts."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from deploy.cli.common import fail

if TYPE_CHECKING:
    from deploy.sandbox.hosts import SandboxHost
    from deploy.sandbox.machines import Sandbox


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _sandbox() -> Sandbox:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.sandbox.machines import Sandbox

    return Sandbox(progress=_progress)


@click.group("sandbox")
def sandbox_group() -> None:
    """Local Debian 12 hosts to deploy to before production: systemd, SSH, Nginx, Python 3, certbot.

    Hosts boot with systemd-nspawn in their own network namespaces and have no route to the outside
    world. 'up' writes the environment that '-e sandbox' uses, an SSH key and a known_hosts file with
    the hosts' real keys. Needs root, systemd-nspawn (systemd-container) and debootstrap.
    State lives in $DEPLOY_SANDBOX_DIR; the root filesystem cache in $DEPLOY_CACHE_DIR (/var/cache/deploy).
    """


@sandbox_group.command("up")
@click.option(
    "--hosts",
    "count",
    type=click.IntRange(1, 50),
    default=1,
    show_default=True,
    help="How many hosts, booted at once (each about 14 MiB and 0.3 s of CPU to boot).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(5, 3600),
    default=120,
    show_default=True,
    help="Seconds to wait for every host to finish booting.",
)
@click.option(
    "--no-acme",
    is_flag=True,
    help="Start no local ACME server (pebble): -e sandbox then serves tls: {email} sites over plain HTTP.",
)
def up_command(count: int, timeout: float, no_acme: bool) -> None:
    """Boot N hosts (the first run builds the root filesystem with debootstrap, about a minute).

    With Debian's pebble installed, also start a local ACME server: under -e sandbox, tls: {email: ...}
    gets real certificates from it, validated on the hosts' port 80, as Let's Encrypt would.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.sandbox.machines import SandboxError

    sandbox = _sandbox()
    try:
        hosts = sandbox.up(count, timeout=timeout, acme=not no_acme)
    except SandboxError as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted; what 'up' had made is removed", 130)
    acme = sandbox.acme()
    if acme is not None:
        _progress(
            f"HTTPS: pebble, a local ACME server at {acme.directory}, issues the certificates for "
            f"-e sandbox; it validates every name on {hosts[0].name} ({acme.default_address})"
        )
        _progress(
            f"  verify a site with its root: curl --cacert {acme.root_file} "
            f"--resolve DOMAIN:443:{acme.default_address} https://DOMAIN/"
        )
    elif no_acme:
        _progress("HTTPS: --no-acme: no ACME server; -e sandbox serves tls: {email} sites over plain HTTP")
    for host in hosts:
        click.echo(f"{host.name}\t{host.address}")


@sandbox_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name, address, state and SSH settings.")
@click.option(
    "--usage",
    "show_usage",
    is_flag=True,
    help="Also what each host costs this machine: CPU seconds since it booted and memory now.",
)
def list_command(as_json: bool, show_usage: bool) -> None:
    """Each host's name and address, and whether it is running (with --usage, its CPU and memory)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.sandbox.machines import SandboxError

    sandbox = _sandbox()
    try:
        hosts = sandbox.hosts()
    except SandboxError as exc:
        fail(str(exc), exc.code)
    if as_json:
        rows = [
            {
                "name": h.name,
                "address": h.address,
                "running": sandbox.is_running(h),
                "user": h.user,
                "port": h.port,
                "key": h.key,
                "known_hosts": h.known_hosts,
                **({"usage": _usage_json(sandbox, h)} if show_usage else {}),
            }
            for h in hosts
        ]
        acme = sandbox.acme()
        about = (
            {"directory": acme.directory, "root": str(acme.root_file), "ca_bundle": str(acme.bundle_file)}
            if acme
            else None
        )
        click.echo(
            json.dumps(
                {
                    "environment": str(sandbox.environment_file) if hosts else None,
                    "hosts": rows,
                    "acme": about,
                },
                indent=2,
            )
        )
        return
    if not hosts:
        click.echo("no sandbox hosts; start some with 'deploy sandbox up --hosts N'", err=True)
        return
    width = max(len(h.name) for h in hosts)
    for host in hosts:
        state = "running" if sandbox.is_running(host) else "stopped"
        line = f"{host.name:<{width}}  {host.address:<15}  {state}"
        cost = sandbox.usage(host) if show_usage else None
        if cost is not None:
            line += (
                f"  cpu {cost.cpu_seconds:.2f}s  memory {cost.memory_bytes / 2**20:.1f} MiB "
                f"({cost.memory_source}, {cost.processes} processes)"
            )
        click.echo(line)


def _usage_json(sandbox: Sandbox, host: SandboxHost) -> dict[str, object] | None:
    cost = sandbox.usage(host)
    if cost is None:
        return None
    return {
        "cpu_seconds": round(cost.cpu_seconds, 3),
        "memory_bytes": cost.memory_bytes,
        "memory_source": cost.memory_source,
        "processes": cost.processes,
    }


@sandbox_group.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_command(name: str, command: tuple[str, ...]) -> None:
    """Open a shell on host NAME, or run one command: deploy sandbox ssh sandbox-1 -- CMD ARGS...

    The command's words are quoted for the remote shell, so they arrive as given. SSH uses the
    sandbox's key and known_hosts with StrictHostKeyChecking=yes.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.sandbox.machines import SandboxError

    try:
        host = _sandbox().host(name)
    except SandboxError as exc:
        fail(str(exc), exc.code)
    argv = host.ssh_argv(list(command) or None, batch=bool(command) or not sys.stdin.isatty())
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - argv is a list, no shell
    except OSError as exc:
        fail(f"cannot run ssh: {exc}; install it with 'sudo apt-get install -y openssh-client'", 2)


@sandbox_group.command("down")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=20,
    show_default=True,
    help="Seconds a host gets to halt before it is killed.",
)
def down_command(timeout: float) -> None:
    """Stop every host and remove its processes, namespaces, links, mounts and files (also after a crash).

    Also removes the empty cgroups that sandboxes ended without a down left on this machine.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.sandbox.machines import SandboxError

    try:
        _sandbox().down(timeout=timeout)
    except SandboxError as exc:
        fail(str(exc), exc.code)


COMMANDS: list[click.Command] = [sandbox_group]
