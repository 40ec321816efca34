"""`deploy services`: the services beside the app: credentials; Postgres and Redis backups (list, make,
verify, pull), restore, console."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from deploy.cli import services_redis as redis
from deploy.cli.common import (
    Printer,
    config_fail,
    config_option,
    connected,
    env_option,
    fail,
    gather,
    handles_config_errors,
    load_config,
    redacts_secrets,
    stoppable,
)
from deploy.cli.services_redis import age_text as _age
from deploy.cli.services_redis import size_text as _size

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.push.quiesce import HostUnits
    from deploy.remote.executor import SSHExecutor

F = TypeVar("F", bound=Callable[..., Any])


def _on_hosts(func: F) -> F:
    """The options of every command here (-c, -e, --accept-new-host-keys) and the error and secret
    boundaries: a bad deploy.yaml exits 2 with file, line and key; output is redacted."""
    func = redacts_secrets(func)
    func = handles_config_errors(func)
    func = click.option(
        "--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet."
    )(func)
    return config_option(env_option(func))


@click.group(name="services")
def services_group() -> None:
    """The services beside the app (services: in deploy.yaml): Postgres and Redis credentials; backups
    (Postgres, and Redis with durable: true), restore, console."""


def _postgres(config_path: str, environment: str | None) -> tuple[Config, str]:
    """The config and the Postgres host; exit 2 when deploy.yaml has no services.postgres."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.backups import service_host

    config, _project = load_config(config_path, environment)
    if config.services.postgres is None:
        config_fail(
            config_path, environment, ("services", "postgres"), "not set: there is no database to back up"
        )
    return config, service_host(config)


def _backed_up(config_path: str, environment: str | None) -> Config:
    """The config; exit 2 when deploy.yaml has neither services.postgres nor a durable services.redis."""
    config, _project = load_config(config_path, environment)
    if config.services.postgres is None and redis.durable(config) is None:
        config_fail(
            config_path,
            environment,
            ("services",),
            "expected postgres, or redis with durable: true: there is nothing to back up",
        )
    return config


def _service_option(func: F) -> F:
    return click.option(
        "--service",
        type=click.Choice(["postgres", "redis"]),
        default=None,
        help="Whose backup (default: postgres when deploy.yaml has it, else redis).",
    )(func)


def _chosen(config_path: str, environment: str | None, service: str | None) -> tuple[Config, str, str]:
    """The config, the service whose backups a command works on (--service, else Postgres when deploy.yaml
    has it, else Redis) and its host; exit 2 when that service has no backups."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.backups import service_host

    config = _backed_up(config_path, environment)
    service = service or ("postgres" if config.services.postgres is not None else "redis")
    if service == "postgres" and config.services.postgres is None:
        config_fail(
            config_path, environment, ("services", "postgres"), "not set: there is no database backup"
        )
    host = service_host(config) if service == "postgres" else redis.durable(config)
    if host is None:
        config_fail(
            config_path, environment, ("services", "redis", "durable"), "not true: Redis has no backups"
        )
    return config, service, host


def _program(executor: SSHExecutor, host: str, command: Any, timeout: float) -> tuple[int, Any]:
    """Run the backup program on `host`: its exit code and the JSON it printed."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.backups import parse_json

    code, output = executor.run(host, command, timeout=timeout)
    try:
        return code, parse_json(output)
    except ValueError:
        fail(f"{host}: {command.description} failed (exit {code}): {output.strip()[-600:]}", 1)
        raise  # unreachable: fail exits


def _rows(record: Mapping[str, Any]) -> tuple[int, int]:
    tables = record.get("tables") or {}
    return len(tables), sum(int(t.get("rows", 0)) for t in tables.values())


def backup_lines(records: list[dict[str, Any]], now: float) -> list[str]:
    """The table `deploy services backups` prints, newest first."""
    lines = [
        f"{'BACKUP':<18} {'AGE':>5} {'SIZE':>10}  {'LABEL':<9} {'VERIFICATION':<12} {'TABLES':>6} {'ROWS':>9}"
    ]
    for record in reversed(records):
        tables, rows = _rows(record)
        status = record.get("status", "?")
        lines.append(
            f"{record['stamp']:<18} {_age(record['stamp'], now):>5} {_size(record.get('size', 0)):>10}  "
            f"{record.get('label', '-'):<9} {status:<12} {tables if status == 'verified' else '-':>6} "
            f"{rows if status == 'verified' else '-':>9}"
        )
        if status != "verified" and record.get("reason"):
            lines.append(f"  {record['reason']}")
    return lines


def table_lines(tables: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [
        f"  {name:<40} {t.get('rows', 0):>9} rows  {_size(t.get('bytes', 0)):>10}  "
        f"sha256 {t.get('sha256', '')[:12]}"
        for name, t in sorted(tables.items())
    ]


@services_group.command(name="backups")
@_on_hosts
@click.option("--json", "as_json", is_flag=True, help="Print the backups' records as JSON.")
def backups(config_path: str, environment: str | None, accept_new_host_keys: bool, as_json: bool) -> None:
    """List the backups: each one's stamp, age, size and verification (Postgres: tables, rows; Redis
    with durable: true: the keys redis-check-rdb read)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import backup_paths
    from deploy.push.backups import list_command, service_host

    config = _backed_up(config_path, environment)
    records: list[dict[str, Any]] = []
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        if config.services.postgres is not None:
            records = _program(executor, service_host(config), list_command(config), 120)[1]
        kept = redis.list_backups(config, lambda h, c, t: _program(executor, h, c, t))
    if as_json:
        click.echo(json.dumps([*records, *kept], indent=2, sort_keys=True))
        return
    if config.services.postgres is not None:
        click.echo(f"{service_host(config)}: {backup_paths(config).folder}")
        if not records:
            click.echo("  no backups yet: make one with 'deploy services backup'")
        for line in backup_lines(records, time.time()) if records else []:
            click.echo(line)
    if redis.durable(config):
        redis.show(config, kept)


def _report(record: Mapping[str, Any], what: str) -> None:
    tables, rows = _rows(record)
    status = record.get("status")
    if status == "verified":
        click.echo(
            f"{what} {record['stamp']}: verified (restored into a scratch database in "
            f"{record.get('verify_seconds', '?')}s): {tables} tables, {rows} rows"
        )
        for line in table_lines(record.get("tables") or {}):
            click.echo(line)
    elif status == "unverified":
        click.echo(
            f"{what} {record['stamp']}: written, not verified (services.postgres.backups.verify is off)"
        )
    else:
        click.echo(f"{what} {record['stamp']}: FAILED: {record.get('reason', '?')}")


@services_group.command(name="backup")
@_on_hosts
@click.option("--json", "as_json", is_flag=True, help="Print the backup's record as JSON.")
@click.option(
    "--service",
    type=click.Choice(["postgres", "redis"]),
    default=None,
    help="Back up only this service (default: Postgres, and Redis when durable).",
)
def backup(
    config_path: str, environment: str | None, accept_new_host_keys: bool, as_json: bool, service: str | None
) -> None:
    """Make a backup now (Postgres, and Redis when durable), wait for it and print its verification
    (exit 1 if one failed)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.backups import backup_command, service_host

    config = _backed_up(config_path, environment)
    postgres = config.services.postgres is not None and service in (None, "postgres")
    with_redis = redis.durable(config) is not None and service in (None, "redis")
    if not postgres and not with_redis:
        config_fail(config_path, environment, ("services", service or "redis"), "has no backups")
    codes = []
    timeout = max(3600, config.push.step_timeout)
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        if postgres:
            host = service_host(config)
            code, record = _program(executor, host, backup_command(config), timeout)
            codes.append(code)
            if as_json:
                click.echo(json.dumps(record, indent=2, sort_keys=True))
            else:
                _report(record, f"{host}: backup")
                for stamp in record.get("removed", []):
                    click.echo(f"  retention removed {stamp}")
                if record.get("copied_to"):
                    click.echo(f"  copied to {record['copied_to']}")
                if record.get("copy_failed"):
                    click.echo(f"  the copy FAILED: {record['copy_failed']}")
        if with_redis:
            codes.append(redis.backup(config, lambda h, c, t: _program(executor, h, c, t), timeout))
    sys.exit(0 if not any(codes) else 1)


@services_group.command(name="verify")
@_on_hosts
@click.argument("backup_name", metavar="[BACKUP]", required=False)
@_service_option
def verify(
    config_path: str,
    environment: str | None,
    accept_new_host_keys: bool,
    backup_name: str | None,
    service: str | None,
) -> None:
    """Prove a stored backup still restores (default: the latest verified); exit 1 if it does not.

    Postgres: restored into a scratch database, each table compared with the backup's record. Redis
    (--service redis): its sha256 and redis-check-rdb again, then a scratch redis-server (the redis
    user's, on a unix socket only) loads it and its keys are counted against the record."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push import redis_backups
    from deploy.push.backups import verify_command

    config, service, host = _chosen(config_path, environment, service)
    make = redis_backups.verify_command if service == "redis" else verify_command
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        command = make(config, backup_name or "latest")
        code, record = _program(executor, host, command, max(3600, config.push.step_timeout))
    if service == "redis":
        redis.verified(record, host)
    else:
        _report(record, f"{host}: backup")
    sys.exit(0 if code == 0 else 1)


def _app_units(executor: SSHExecutor, config: Config) -> dict[str, HostUnits]:
    """{host: its units} of every host that runs something of the app: the live web slot, the
    processes' instances, the job timers (see deploy/push/quiesce.py)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.quiesce import app_units

    return app_units(config, gather(executor, config))


def _systemctl(executor: SSHExecutor, units: Mapping[str, list[str]], action: str) -> list[str]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote import commands as cmd
    from deploy.remote.executor import each

    wanted = {host: names for host, names in units.items() if names}
    results = each(
        list(wanted),
        lambda h: executor.run(h, cmd.systemctl(action, *wanted[h], description=f"{action} the app")),
    )
    problems = []
    for host, result in results.items():
        what = f"{host}: systemctl {action} {' '.join(wanted[host])}"
        if isinstance(result, BaseException):
            problems.append(f"{what}: {result}")
        elif result[0] != 0:
            problems.append(f"{what}: {result[1].strip()[-300:]}")
    return problems


@contextlib.contextmanager
def app_stopped(executor: SSHExecutor, config: Config, printer: Printer) -> Iterator[None]:
    """The app stopped on every host (web, processes, job timers) for the block, and started again
    after it, whatever happens in it; exit 1 (nothing done) if it does not stop."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.quiesce import describe

    units = _app_units(executor, config)
    if units:
        printer.say(f"stopping the app: {describe(units)}")
        problems = _systemctl(executor, {h: u.stop for h, u in units.items()}, "stop")
        if problems:
            _systemctl(executor, {h: u.start for h, u in units.items()}, "start")
            fail("nothing was restored: the app did not stop:\n  " + "\n  ".join(problems), 1)
    try:
        yield
    finally:
        if units:
            problems = _systemctl(executor, {h: u.start for h, u in units.items()}, "start")
            said = "\n  ".join(problems)
            printer.say("started the app again" if not problems else f"the app did not start:\n  {said}")


@services_group.command(name="restore")
@_on_hosts
@click.argument("backup_name", metavar="[BACKUP]", required=False)
@_service_option
def restore(
    config_path: str,
    environment: str | None,
    accept_new_host_keys: bool,
    backup_name: str | None,
    service: str | None,
) -> None:
    """Restore a verified backup (default: the latest) under the deploy lock, with the app stopped:
    its web slots, its processes' instances and its job timers, started again afterwards.

    A safety backup of the data as it is comes first. Postgres: the restore runs in one transaction
    (one that fails leaves the database as it was), and every table's rows are compared with the
    backup's record. Redis (--service redis): redis-server stops, the backup's RDB takes the place of
    its data, it starts again, and its keys are counted against the backup's.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push import redis_backups
    from deploy.push.backups import list_command, restore_command
    from deploy.push.lock import take_locks

    config, service, host = _chosen(config_path, environment, service)
    printer = Printer(False)
    with stoppable(printer, "restore"), connected(config, accept_new_host_keys, printer) as executor:
        # Refused before anything stops: a backup that is not (or no longer) verified.
        if service == "postgres":
            record = _pick(_program(executor, host, list_command(config), 120)[1], backup_name)
        else:
            record = redis.pick(
                redis.list_backups(config, lambda h, c, t: _program(executor, h, c, t)), backup_name
            )
        if record.get("status") != "verified":
            fail(
                f"nothing was changed: backup {record['stamp']} is {record.get('status')} "
                f"({record.get('reason', 'no reason recorded')}); restore only a verified backup",
                1,
            )
        action = "restore" if service == "postgres" else "redis restore"
        take_locks(executor, config, printer, action, record["stamp"])
        with app_stopped(executor, config, printer):
            if service == "postgres":
                command = restore_command(config, record["stamp"])
            else:
                command = redis_backups.restore_command(config, record["stamp"])
            code, result = _program(executor, host, command, max(3600, config.push.step_timeout))
    if service == "redis":
        redis.restored(host, result)
        return
    _restored(host, code, result)


def _restored(host: str, code: int, result: Mapping[str, Any]) -> None:
    if result.get("safety_backup"):
        click.echo(f"{host}: safety backup {result['safety_backup']} of the database as it was")
    status = result.get("status")
    if status == "restored":
        tables = result.get("tables") or {}
        rows = sum(int(t.get("rows", 0)) for t in tables.values())
        click.echo(
            f"{host}: restored backup {result['backup']}: {len(tables)} tables, {rows} rows, every table's "
            "rows as the backup recorded them"
        )
        for line in table_lines(tables):
            click.echo(line)
        return
    if status == "mismatch":
        for name, numbers in sorted((result.get("differ") or {}).items()):
            click.echo(f"  {name}: the backup recorded {numbers['expected']} rows, found {numbers['found']}")
        fail(f"{host}: restored backup {result['backup']}, but its rows differ from the backup's record", 1)
    fail(f"{host}: nothing was restored: {result.get('reason', status)}", 1)


@services_group.command(name="pull")
@_on_hosts
@click.argument("backup_name", metavar="[BACKUP]", required=False)
@click.option(
    "-o",
    "--output",
    "output",
    default=None,
    metavar="FILE",
    help="Where to write it (default ./<stamp>.dump, or ./<stamp>.rdb for Redis).",
)
@_service_option
def pull(
    config_path: str,
    environment: str | None,
    accept_new_host_keys: bool,
    backup_name: str | None,
    output: str | None,
    service: str | None,
) -> None:
    """Download a backup (default: the latest verified): Postgres's dump, or Redis's RDB (--service redis);
    its sha256 is checked against the record."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.cli.services_download import download
    from deploy.push.backups import list_command

    config, service, host = _chosen(config_path, environment, service)
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        if service == "redis":
            record = redis.pick(
                redis.list_backups(config, lambda h, c, t: _program(executor, h, c, t)), backup_name
            )
        else:
            record = _pick(_program(executor, host, list_command(config), 120)[1], backup_name)
        suffix, recorded = (".rdb", "rdb_sha256") if service == "redis" else (".dump", "dump_sha256")
        target = Path(output or f"{record['stamp']}{suffix}")
        download(executor, host, record["path"], target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if record.get(recorded) and digest != record[recorded]:
        fail(f"{target}: its sha256 differs from the backup's record: the download is damaged", 1)
    how = (
        f"load it elsewhere with: redis-server --dir . --dbfilename {target.name} --appendonly no"
        if service == "redis"
        else f"restore it elsewhere with: pg_restore --no-owner --dbname NAME {target}"
    )
    click.echo(
        f"{target}: backup {record['stamp']} ({_size(target.stat().st_size)}, {record.get('status')}); {how}"
    )


def _pick(records: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    if not wanted or wanted == "latest":
        # A safety backup holds the database as it was before a restore: it is taken only by name.
        verified = [r for r in records if r.get("status") == "verified" and r.get("label") != "safety"]
        if not verified:
            fail("there is no verified backup; see 'deploy services backups'", 1)
        return verified[-1]
    stem = Path(wanted).name.removesuffix(".dump")
    for record in records:
        if record["stamp"] == stem:
            return record
    fail(f"there is no backup {wanted}; see 'deploy services backups'", 1)
    raise AssertionError  # unreachable: fail exits


@services_group.command(name="console", context_settings={"ignore_unknown_options": True})
@_on_hosts
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def console(
    config_path: str, environment: str | None, accept_new_host_keys: bool, argv: tuple[str, ...]
) -> None:
    """Open psql on the app's database through SSH; after --, psql's arguments run without a terminal:
    deploy services console -- -c 'select count(*) from users'."""
    config, host = _postgres(config_path, environment)
    # env -C /: psql as postgres cannot enter the login user's home folder.
    psql = ("env", "-C", "/", "runuser", "-u", "postgres", "--", "psql", "-X", "-d", config.database, *argv)
    if argv:
        # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
        from deploy.plan import Command

        with connected(config, accept_new_host_keys, Printer(False)) as executor:
            code = executor.stream(host, Command(psql, "psql", sudo=True), lambda t: click.echo(t, nl=False))
        sys.exit(code)
    os.execvp("ssh", _ssh_argv(config, host, psql))  # noqa: S606 (an interactive terminal: the user's ssh)


def _ssh_argv(config: Config, host: str, remote: tuple[str, ...]) -> list[str]:
    """`ssh -t` to `host` with deploy.yaml's key, known_hosts, user, port and jump host."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    import shlex

    from deploy.remote.executor import host_name, known_hosts_file

    ssh = config.server.ssh
    entry = next(h for h in config.server.hosts if host_name(h) == host)
    user = entry.user or ssh.user
    argv = [
        "ssh",
        "-t",
        "-o",
        f"UserKnownHostsFile={known_hosts_file(config)}",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    argv += ["-p", str(entry.port or ssh.port)]
    if ssh.key:
        argv += ["-i", os.path.expanduser(ssh.key)]
    if ssh.proxy_jump:
        argv += ["-J", ssh.proxy_jump]
    remote = remote if user == "root" and not ssh.sudo else ("sudo", *remote)
    return [*argv, f"{user}@{entry.address}", shlex.join(remote)]


#: What each service's password opens, for the warning before it is printed.
_OPENS = {"postgres": "the database", "redis": "Redis"}


@services_group.command()
@config_option
@env_option
@click.option(
    "--service",
    type=click.Choice(["postgres", "redis"]),
    default=None,
    help="The service whose URL to print (default: every service in deploy.yaml).",
)
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
def credentials(
    config_path: str, environment: str | None, service: str | None, accept_new_host_keys: bool
) -> None:
    """Print the URL the app connects to a service with, password included.

    This is the one command that shows it: deploy made the password on the service host (kept there,
    root 0600) and writes it only into the app's env file. Anyone who sees the output can use the
    service from an app host: do not paste it anywhere.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load
    from deploy.push import services
    from deploy.push.services_redis import RedisError, require_credentials
    from deploy.remote.executor import SSHExecutor

    config = load(config_path, environment)
    configured = [n for n in ("postgres", "redis") if getattr(config.services, n) is not None]
    wanted = [service] if service else configured
    missing = [n for n in wanted if n not in configured]
    if not wanted or missing:
        name = (missing or ["postgres"])[0]
        config_fail(
            config_path, environment, ("services", name), "not in deploy.yaml: there is nothing to show"
        )
    if not config.server.hosts:
        config_fail(
            config_path, environment, ("server", "hosts"), "expected at least one host (or use -e sandbox)"
        )
    executor = SSHExecutor(config, config.server.hosts, accept_new_host_keys=accept_new_host_keys)
    found: list[tuple[str, dict[str, str]]] = []
    try:
        try:
            if "postgres" in wanted:
                env, _ = services.app_env(config, executor)
                found.append(("postgres", dict(env)))
            if "redis" in wanted:
                found.append(("redis", dict(require_credentials(config, executor))))
        except (services.ServiceError, RedisError) as exc:
            fail(str(exc))
            return
    finally:
        executor.close()
    for name, env in found:
        click.echo(
            f"warning: the {name} password follows; it opens {_OPENS[name]} to anyone on an app host",
            err=True,
        )
        for key, value in env.items():
            click.echo(f"{key}={value}")


COMMANDS: list[click.Command] = [services_group]
