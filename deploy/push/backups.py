"""Postgres backups as plans and commands: the timer and service setup installs, and the host program's
command lines (backup, verify, list, restore) that `deploy services` runs on the service host."""

from __future__ import annotations

import json
from typing import Any

from deploy.config.model import Backups, Config, service_host_name
from deploy.layout import backup_copy_folder, backup_copy_host, backup_copy_paths, backup_paths
from deploy.plan import Command, Step, Upload
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState
from deploy.remote.scripts import host_program
from deploy.render.render import systemd_quote

#: The host program (run as root with python3 -I): see deploy/remote/scripts/pg_backup.py.
PG_BACKUP = host_program("pg_backup.py")

#: Exit codes of the host program: a dump that does not restore, a refused restore, rows that differ.
FAILED, REFUSED, MISMATCH = 3, 4, 5


def service_host(config: Config) -> str:
    """The host Postgres runs on: services.postgres.host, or the first of server.hosts."""
    postgres = config.services.postgres
    named = service_host_name(config, postgres) if postgres is not None else None
    return named or config.server.hosts[0].name


def _settings(config: Config) -> Backups:
    postgres = config.services.postgres
    return (postgres.backups if postgres else None) or Backups()


def backup_args(config: Config, label: str) -> tuple[str, ...]:
    """The host program's arguments for one backup of `config`'s database."""
    settings = _settings(config)
    args = [
        "backup",
        "--dir",
        backup_paths(config).folder,
        "--database",
        config.database,
        "--label",
        label,
        "--keep-daily",
        str(settings.keep_daily),
        "--keep-weekly",
        str(settings.keep_weekly),
    ]
    copy = backup_copy_folder(config)
    if copy is not None:
        args += ["--copy-to", copy]
    args += copy_host_args(config)
    if not settings.verify:
        args.append("--no-verify")
    return tuple(args)


def copy_host_args(config: Config) -> list[str]:
    """The backup program's arguments that send each verified backup to copy_to's host (none: no host)."""
    address = backup_copy_host(config)
    if address is None:
        return []
    entry = next(h for h in config.server.hosts if h.address == address)
    paths = backup_copy_paths(config)
    return [
        "--copy-host",
        address.strip("[]"),
        "--copy-port",
        str(entry.port or config.server.ssh.port),
        "--copy-user",
        paths.user,
        "--copy-key",
        paths.key,
        "--copy-known-hosts",
        paths.known_hosts,
    ]


def _program(args: tuple[str, ...], description: str) -> Command:
    return Command(("python3", "-I", "-c", PG_BACKUP, *args), description, sudo=True)


def backup_command(config: Config, label: str = "manual") -> Command:
    return _program(backup_args(config, label), "a Postgres backup, verified by a restore into a scratch db")


def list_command(config: Config) -> Command:
    return _program(("list", "--dir", backup_paths(config).folder), "list the Postgres backups")


def verify_command(config: Config, backup: str) -> Command:
    folder = backup_paths(config).folder
    return _program(
        ("verify", backup, "--dir", folder, "--database", config.database),
        f"verify backup {backup} again (restore into a scratch database)",
    )


def restore_command(config: Config, backup: str) -> Command:
    folder = backup_paths(config).folder
    return _program(
        ("restore", backup, "--dir", folder, "--database", config.database),
        f"restore backup {backup} (a safety backup first; one transaction)",
    )


def parse_json(output: str) -> Any:
    """The JSON the host program printed last (its output's last line that parses)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"the backup program printed no JSON: {output.strip()[-300:]}")


# --- the timer ----------------------------------------------------------------------------------

_HARDENING = (
    ("UMask", "0077"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateNetwork", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictAddressFamilies", "AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    # Root writes the root-only folder; the Postgres clients run as postgres (setuid, setgroups).
    ("CapabilityBoundingSet", "CAP_SETUID CAP_SETGID CAP_CHOWN"),
)


def _hardening(network: bool) -> tuple[tuple[str, str], ...]:
    """The unit's sandbox; with a copy to another host, ssh reaches the network (nothing else does)."""
    if not network:
        return _HARDENING
    opened = {"PrivateNetwork": "no", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}
    return tuple((key, opened.get(key, value)) for key, value in _HARDENING)


def service_unit(config: Config) -> str:
    """The oneshot service the timer starts: one verified backup, as root, hardened."""
    paths = backup_paths(config)
    argv = ("/usr/bin/python3", "-I", paths.program, *backup_args(config, "scheduled"))
    writable = [paths.folder]
    copy = backup_copy_folder(config)
    if copy is not None:
        writable.append(copy)
    lines = [
        f"# Made by deploy (services.postgres.backups): a verified Postgres backup of {config.app.name}.",
        "[Unit]",
        f"Description=Verified Postgres backup of {config.app.name} (deploy)",
        "Requires=postgresql.service",
        "After=postgresql.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=" + " ".join(systemd_quote(a, command=True) for a in argv),
        "Nice=10",
        "IOSchedulingClass=idle",
        # deploy setup makes the folders (root 0700); they must exist for the mount namespace.
        "ReadWritePaths=" + " ".join(systemd_quote(w) for w in writable),
        *(f"{key}={value}" for key, value in _hardening(network=backup_copy_host(config) is not None)),
        "",
    ]
    return "\n".join(lines)


def timer_unit(config: Config) -> str:
    """The timer of services.postgres.backups.schedule; missed runs run after the host is back."""
    lines = [
        "# Made by deploy (services.postgres.backups.schedule).",
        "[Unit]",
        f"Description=Scheduled verified Postgres backups of {config.app.name} (deploy)",
        "",
        "[Timer]",
        f"OnCalendar={_settings(config).schedule}",
        "Persistent=true",
        "RandomizedDelaySec=60",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return "\n".join(lines)


#: How the backups' folders are owned (a fact of the probe's `owners`).
ROOT_ONLY = {"owner": "root", "group": "root", "mode": 0o700, "kind": "dir"}


def backup_folders(config: Config) -> list[str]:
    """The folders that hold backups on the service host: the app's, and copy_to's."""
    copy = backup_copy_folder(config)
    return [backup_paths(config).folder, *([copy] if copy else [])]


def backup_files(config: Config) -> dict[str, str]:
    """{path on the host: text} of the backup program and its units (empty: no scheduled backups)."""
    postgres = config.services.postgres
    if postgres is None or postgres.backups is None:
        return {}
    paths = backup_paths(config)
    return {paths.program: PG_BACKUP, paths.service: service_unit(config), paths.timer: timer_unit(config)}


def timer_removal(title: str, host: str, timer_unit: str, files: tuple[str, str], why: str) -> Step:
    """The step that stops a backup timer and removes its two units (the backups themselves stay)."""
    return Step(
        title,
        host,
        (
            cmd.systemctl("disable", "--now", timer_unit, check=False),
            Command(("rm", "-f", "--", *files), why, sudo=True),
            cmd.daemon_reload(),
        ),
    )


def backup_steps(config: Config, state: HostState) -> tuple[Step, ...]:
    """Install (or remove) the backup timer on the service host where it differs from the host's."""
    if state.host != service_host(config):
        return ()
    paths = backup_paths(config)
    wanted = backup_files(config)
    if not wanted:
        if state.files.get(paths.timer) is None:
            return ()
        why = "remove the backup timer (services.postgres.backups is gone; backups are kept)"
        return (
            timer_removal("backup timer", state.host, paths.timer_unit, (paths.service, paths.timer), why),
        )
    changed = [path for path, text in wanted.items() if state.files.get(path) != text]
    folders = [f for f in backup_folders(config) if state.owners.get(f) != ROOT_ONLY]
    if not changed and not folders:
        return ()
    actions: list[Command | Upload] = [
        *(cmd.make_dir(folder, "root", "root", 0o700, f"backups folder {folder}") for folder in folders),
        cmd.make_dir(paths.program.rsplit("/", 1)[0], "root", "root", 0o755),
        *(Upload(path, wanted[path].encode(), 0o644, "root", "root", description=path) for path in changed),
        cmd.daemon_reload(),
        cmd.systemctl("enable", "--now", paths.timer_unit, description="start the backup timer"),
    ]
    return (Step("backup timer", state.host, tuple(actions)),)
