"""The Redis half of `deploy services backups|backup|restore` (services.redis.durable: true): its
backups listed, made and restored on Redis's host through deploy/remote/scripts/redis_backup.py."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from deploy.cli.common import fail

if TYPE_CHECKING:
    from deploy.config.model import Config

#: Runs the host program on a host: (exit code, the JSON it printed).
Program = Callable[[str, Any, float], tuple[int, Any]]


def size_text(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def age_text(stamp: str, now: float) -> str:
    seconds = max(0.0, now - calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    for span, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= span:
            return f"{seconds // span:.0f}{unit}"
    return f"{seconds:.0f}s"


def lines(records: list[dict[str, Any]], now: float) -> list[str]:
    """The Redis table of `deploy services backups`, newest first."""
    out = [f"{'BACKUP':<18} {'AGE':>5} {'SIZE':>10}  {'LABEL':<9} {'CHECK':<12} {'KEYS':>9}"]
    for record in reversed(records):
        status = record.get("status", "?")
        keys = record.get("keys") if status == "verified" else "-"
        size = size_text(record.get("size", 0))
        out.append(
            f"{record['stamp']:<18} {age_text(record['stamp'], now):>5} {size:>10}  "
            f"{record.get('label', '-'):<9} {status:<12} {keys if keys is not None else '?':>9}"
        )
        if status != "verified" and record.get("reason"):
            out.append(f"  {record['reason']}")
    return out


def durable(config: Config) -> str | None:
    """Redis's host when its data is backed up (services.redis.durable), else None."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.services_redis import service_host

    redis = config.services.redis
    return service_host(config) if redis is not None and redis.durable else None


def list_backups(config: Config, program: Program) -> list[dict[str, Any]]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.redis_backups import list_command

    host = durable(config)
    return list(program(host, list_command(config), 120)[1]) if host else []


def show(config: Config, records: list[dict[str, Any]]) -> None:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import redis_backup_paths

    click.echo(f"{durable(config)}: {redis_backup_paths(config).folder} (Redis)")
    if not records:
        click.echo("  no Redis backups yet: make one with 'deploy services backup'")
        return
    for line in lines(records, time.time()):
        click.echo(line)


def report(record: Mapping[str, Any], host: str) -> None:
    if record.get("status") == "verified":
        click.echo(
            f"{host}: Redis backup {record['stamp']}: checked by redis-check-rdb: {record.get('keys')} keys "
            f"({size_text(record.get('size', 0) or 0)})"
        )
    else:
        click.echo(f"{host}: Redis backup {record.get('stamp', '?')}: FAILED: {record.get('reason', '?')}")
    for stamp in record.get("removed", []):
        click.echo(f"  retention removed {stamp}")


def verified(record: Mapping[str, Any], host: str) -> None:
    """What `deploy services verify --service redis` says of the backup it verified."""
    if record.get("status") == "verified":
        click.echo(
            f"{host}: Redis backup {record['stamp']}: verified (redis-check-rdb, then loaded by a scratch "
            f"redis-server in {record.get('verify_seconds', '?')}s): {record.get('loaded_keys')} keys, as "
            "the backup recorded"
        )
    else:
        click.echo(f"{host}: Redis backup {record.get('stamp', '?')}: FAILED: {record.get('reason', '?')}")


def backup(config: Config, program: Program, timeout: float) -> int:
    """One Redis backup now; its exit code."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.redis_backups import backup_command

    host = durable(config)
    assert host is not None
    code, record = program(host, backup_command(config), timeout)
    report(record, host)
    return code


def pick(records: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    if not wanted or wanted == "latest":
        base = [r for r in records if r.get("status") == "verified" and r.get("label") != "safety"]
        if not base:
            fail("there is no verified Redis backup; see 'deploy services backups'", 1)
        return base[-1]
    stem = wanted.rsplit("/", 1)[-1].removesuffix(".rdb")
    for record in records:
        if record["stamp"] == stem:
            return record
    fail(f"there is no Redis backup {wanted}; see 'deploy services backups'", 1)
    raise AssertionError  # unreachable: fail exits


def restored(host: str, result: Mapping[str, Any]) -> None:
    if result.get("safety_backup"):
        click.echo(f"{host}: safety backup {result['safety_backup']} of Redis as it was")
    status = result.get("status")
    if status == "restored":
        click.echo(
            f"{host}: restored Redis backup {result['backup']}: {result.get('keys')} keys, as the backup "
            "recorded them"
        )
        return
    if status == "mismatch":
        fail(
            f"{host}: restored Redis backup {result['backup']}, but Redis holds {result.get('keys')} keys "
            f"where the backup recorded {result.get('expected')}",
            1,
        )
    fail(f"{host}: nothing was restored: {result.get('reason', status)}", 1)
