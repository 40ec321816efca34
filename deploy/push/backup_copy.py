"""services.postgres.backups.copy_to naming another host: the service host sends each verified backup
there itself (its timer runs without deploy), so setup prepares both ends.

- On the service host: a key of its own (ed25519, made there, root 0600: it never leaves the host)
  and the target's host key pinned in a known_hosts file of its own (from deploy's known_hosts, which
  deploy checked when it connected: StrictHostKeyChecking=yes, never trust on first use).
- On the target host: a system account (`<app>-backups`) whose only key is that one, with
  `restrict` and a forced command: the backup program's `receive`, which can write a backup into one
  folder (0700, the account's) and apply retention there, and nothing else (no shell, no reading).
  Its authorized_keys is root's (the account cannot change it).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from deploy.config.model import Config
from deploy.layout import backup_copy_host, backup_copy_paths, backup_paths
from deploy.plan import Command, Step, Upload
from deploy.push.backups import PG_BACKUP, service_host
from deploy.remote import commands as cmd
from deploy.remote.executor import Executor, host_name, known_hosts_file


class CopyError(Exception):
    """The copy target cannot be prepared (its host key is unknown); the message says what to do."""


@dataclass(frozen=True)
class Ends:
    source: str
    target: str
    address: str
    port: int


def ends(config: Config) -> Ends | None:
    """The service host and the target host (as the executor names them), None: no copy to a host."""
    address = backup_copy_host(config)
    if address is None:
        return None
    entry = next(h for h in config.server.hosts if h.address == address)
    port = entry.port or config.server.ssh.port
    return Ends(service_host(config), host_name(entry), address.strip("[]"), port)


def pinned(config: Config, end: Ends) -> str:
    """The target's host keys from deploy's known_hosts, as the service host's known_hosts file."""
    name = end.address if end.port == 22 else f"[{end.address}]:{end.port}"
    path = known_hosts_file(config)
    keys = paramiko.HostKeys(str(path)) if path.is_file() else paramiko.HostKeys()
    found = keys.lookup(name)
    if not found:
        raise CopyError(
            f"services.postgres.backups.copy_to: {end.address}'s host key is not in {path}: connect to it "
            "once with deploy (deploy setup --accept-new-host-keys) so that it can be pinned"
        )
    lines = [f"{name} {kind} {found[kind].get_base64()}" for kind in sorted(found.keys())]
    return "# Pinned by deploy from its known_hosts: the only host this key may copy backups to.\n" + (
        "\n".join(lines) + "\n"
    )


def authorized_line(config: Config, public_key: str) -> str:
    """The one line of the account's authorized_keys: the key may only run `receive`."""
    keep = postgres_backups(config)
    program = backup_paths(config).program
    forced = shlex.join(
        [
            "/usr/bin/python3",
            "-I",
            program,
            "receive",
            "--dir",
            backup_copy_paths(config).target,
            "--keep-daily",
            str(keep[0]),
            "--keep-weekly",
            str(keep[1]),
        ]
    )
    return f'restrict,command="{forced}" {public_key.strip()}\n'


def postgres_backups(config: Config) -> tuple[int, int]:
    postgres = config.services.postgres
    backups = postgres.backups if postgres else None
    return (backups.keep_daily, backups.keep_weekly) if backups else (7, 4)


def _source_state(config: Config) -> Command:
    paths = backup_copy_paths(config)
    return Command(
        ("sh", "-c", 'cat -- "$1.pub" 2>/dev/null; echo "--kh--"; cat -- "$2" 2>/dev/null; true', "read",
         paths.key, paths.known_hosts),
        "the backup copy key and its pinned host key",
        sudo=True,
    )  # fmt: skip


def _target_state(config: Config) -> Command:
    paths = backup_copy_paths(config)
    script = (
        'id -u -- "$1" >/dev/null 2>&1 && echo "user yes"; '
        'echo "folder $(stat -c %U:%a -- "$2" 2>/dev/null)"; '
        'echo "program $(sha256sum < "$3" 2>/dev/null | cut -d" " -f1)"; '
        'echo "--ak--"; cat -- "$4" 2>/dev/null; true'
    )
    return Command(
        (
            "sh",
            "-c",
            script,
            "read",
            paths.user,
            paths.target,
            backup_paths(config).program,
            paths.authorized_keys,
        ),
        "the account that receives backup copies",
        sudo=True,
    )


def source_step(config: Config, end: Ends, found: str) -> Step | None:
    """The key (made on the service host if missing) and the pinned known_hosts, where they differ."""
    paths = backup_copy_paths(config)
    public, _, known = found.partition("--kh--\n")
    wanted = pinned(config, end)
    actions: list[Command | Upload] = []
    if not public.strip():
        actions += [
            cmd.make_dir(paths.folder, "root", "root", 0o700, "the backup copy key's folder"),
            Command(
                ("sh", "-c", 'test -s "$1" || ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1"', "keygen",
                 paths.key, f"deploy {config.app.name} backups from {end.source}"),
                "make the key that copies backups (on this host; it never leaves it)",
                sudo=True,
            ),
        ]  # fmt: skip
    if known != wanted:
        actions.append(
            Upload(paths.known_hosts, wanted.encode(), 0o600, "root", "root", description="pinned host key")
        )
    return Step("backup copy key", end.source, tuple(actions)) if actions else None


def target_step(config: Config, end: Ends, public_key: str, found: str) -> Step | None:
    """The receiving account, its folder, the program and the one authorized key, where they differ."""
    paths = backup_copy_paths(config)
    facts, _, keys = found.partition("--ak--\n")
    line = authorized_line(config, public_key)
    program = backup_paths(config).program
    actions: list[Command | Upload] = []
    if "user yes" not in facts:
        actions.append(
            Command(
                ("useradd", "--system", "--home-dir", paths.home, "--no-create-home", "--shell", "/bin/sh",
                 "--password", "*", paths.user),
                f"the account {paths.user} (its one key may only write backups)",
                sudo=True,
            )
        )  # fmt: skip
    if f"folder {paths.user}:700" not in facts:
        parent = paths.target.rsplit("/", 1)[0]
        actions += [
            cmd.make_dir(parent.rsplit("/", 1)[0], "root", "root", 0o711),
            cmd.make_dir(parent, "root", "root", 0o711),
            cmd.make_dir(paths.target, paths.user, paths.user, 0o700, "the folder that receives the copies"),
        ]
    if f"program {hashlib.sha256(PG_BACKUP.encode()).hexdigest()}" not in facts:
        actions += [
            cmd.make_dir(program.rsplit("/", 1)[0], "root", "root", 0o755),
            Upload(program, PG_BACKUP.encode(), 0o644, "root", "root", description=program),
        ]
    if keys != line:
        actions += [
            cmd.make_dir(paths.home, "root", "root", 0o755),
            cmd.make_dir(f"{paths.home}/.ssh", "root", "root", 0o755),
            Upload(
                paths.authorized_keys, line.encode(), 0o644, "root", "root", description="the forced command"
            ),
        ]
    return Step("backup copy target", end.target, tuple(actions)) if actions else None


def prepare(config: Config, executor: Executor, run: Callable[[list[Step]], None], apply: bool) -> list[Step]:
    """Plan both ends (and, with `apply`, run them: the target needs the key the source makes)."""
    end = ends(config)
    if end is None:
        return []
    first = source_step(config, end, executor.gather(end.source, _source_state(config)))
    steps = [first] if first else []
    if apply and first:
        run([first])
    public = executor.gather(end.source, _source_state(config)).partition("--kh--\n")[0]
    if not public.strip():
        # A dry run before the key exists: the target's step is known only once it does.
        return steps
    second = target_step(config, end, public, executor.gather(end.target, _target_state(config)))
    if second:
        steps.append(second)
        if apply:
            run([second])
    return steps
