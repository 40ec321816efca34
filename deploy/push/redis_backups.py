"""Redis backups (services.redis.durable: true) as plans and commands: the timer and service setup
installs on Redis's host, and the host program's command lines (backup, list, restore) that `deploy
services` runs there. The schedule and retention are services.postgres.backups' (daily, 7 daily and 4
weekly without it)."""

from __future__ import annotations

from deploy.config.model import Backups, Config
from deploy.layout import redis_backup_paths, redis_dropin
from deploy.plan import Command, Step, Upload
from deploy.push.backups import ROOT_ONLY, timer_removal
from deploy.push.services_redis import service_host
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState
from deploy.remote.scripts import host_program
from deploy.render.render import systemd_quote

#: The host program (run as root with python3 -I): see deploy/remote/scripts/redis_backup.py.
REDIS_BACKUP = host_program("redis_backup.py")


def durable(config: Config) -> bool:
    redis = config.services.redis
    return redis is not None and redis.durable


def settings(config: Config) -> Backups:
    postgres = config.services.postgres
    return (postgres.backups if postgres else None) or Backups()


def backup_args(config: Config, label: str) -> tuple[str, ...]:
    keep = settings(config)
    return (
        "backup",
        *_where(config),
        "--label",
        label,
        "--keep-daily",
        str(keep.keep_daily),
        "--keep-weekly",
        str(keep.keep_weekly),
    )


def _where(config: Config) -> tuple[str, ...]:
    return ("--dir", redis_backup_paths(config).folder, "--app", config.app.name)


def _program(args: tuple[str, ...], description: str) -> Command:
    return Command(("python3", "-I", "-c", REDIS_BACKUP, *args), description, sudo=True)


def backup_command(config: Config, label: str = "manual") -> Command:
    return _program(backup_args(config, label), "a Redis backup (BGSAVE), checked by redis-check-rdb")


def verify_command(config: Config, backup: str) -> Command:
    return _program(
        ("verify", backup, *_where(config)),
        f"verify Redis backup {backup} (redis-check-rdb, then loaded by a scratch redis-server)",
    )


def list_command(config: Config) -> Command:
    return _program(("list", *_where(config)), "list the Redis backups")


def restore_command(config: Config, backup: str) -> Command:
    return _program(
        ("restore", backup, *_where(config), "--dropin", redis_dropin(config)),
        f"restore Redis backup {backup} (a safety backup first; redis-server stopped and started)",
    )


def service_unit(config: Config) -> str:
    """The oneshot service the timer starts: one checked Redis backup, as root."""
    paths = redis_backup_paths(config)
    argv = ("/usr/bin/python3", "-I", paths.program, *backup_args(config, "scheduled"))
    lines = [
        f"# Made by deploy (services.redis.durable): a checked Redis backup of {config.app.name}.",
        "[Unit]",
        f"Description=Checked Redis backup of {config.app.name} (deploy)",
        "Requires=redis-server.service",
        "After=redis-server.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=" + " ".join(systemd_quote(a, command=True) for a in argv),
        "Nice=10",
        "IOSchedulingClass=idle",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateNetwork=yes",
        f"ReadWritePaths={systemd_quote(paths.folder)}",
        "",
    ]
    return "\n".join(lines)


def timer_unit(config: Config) -> str:
    lines = [
        "# Made by deploy (services.redis.durable; the schedule of services.postgres.backups).",
        "[Unit]",
        f"Description=Scheduled Redis backups of {config.app.name} (deploy)",
        "",
        "[Timer]",
        f"OnCalendar={settings(config).schedule}",
        "Persistent=true",
        "RandomizedDelaySec=60",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return "\n".join(lines)


def backup_files(config: Config) -> dict[str, str]:
    """{path on the host: text} of the program and its units (empty: Redis is not durable)."""
    if not durable(config):
        return {}
    paths = redis_backup_paths(config)
    return {paths.program: REDIS_BACKUP, paths.service: service_unit(config), paths.timer: timer_unit(config)}


def backup_steps(config: Config, state: HostState) -> tuple[Step, ...]:
    """Install (or remove: durable is off) the Redis backup timer on Redis's host where it differs."""
    redis = config.services.redis
    paths = redis_backup_paths(config)
    wanted = backup_files(config)
    mine = redis is not None and state.host == service_host(config)
    if not wanted or not mine:
        if state.files.get(paths.timer) is None:
            return ()
        why = "remove the Redis backup timer (services.redis.durable is off; backups are kept)"
        files = (paths.service, paths.timer)
        return (timer_removal("redis backup timer", state.host, paths.timer_unit, files, why),)
    changed = [path for path, text in wanted.items() if state.files.get(path) != text]
    folder = state.owners.get(paths.folder) != ROOT_ONLY
    if not changed and not folder:
        return ()
    made = cmd.make_dir(paths.folder, "root", "root", 0o700, f"Redis backups folder {paths.folder}")
    actions: list[Command | Upload] = [
        *([made] if folder else []),
        cmd.make_dir(paths.program.rsplit("/", 1)[0], "root", "root", 0o755),
        *(Upload(path, wanted[path].encode(), 0o644, "root", "root", description=path) for path in changed),
        cmd.daemon_reload(),
        cmd.systemctl("enable", "--now", paths.timer_unit, description="start the Redis backup timer"),
    ]
    return (Step("redis backup timer", state.host, tuple(actions)),)
