"""services.redis durable: true without hosts: the timer setup installs on Redis's host only (and removes
when durable goes), the host program's command lines, retention and the table `deploy services backups`
prints."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from deploy.cli.services_redis import lines
from deploy.config.loader import load_text
from deploy.push import redis_backups
from deploy.remote.facts import HostState
from deploy.remote.scripts import redis_backup
from tests.unit.push.test_backups import YAML

pytestmark = pytest.mark.unit

DURABLE = load_text(YAML + "  redis: {host: 10.0.0.1, persistence: aof, durable: true}\n")
PLAIN = load_text(YAML + "  redis: {host: 10.0.0.1}\n")


def test_the_timer_runs_on_redis_host_with_postgres_schedule_and_retention() -> None:
    paths = redis_backups.backup_files(DURABLE)
    assert sorted(paths) == [
        "/etc/systemd/system/shop-app-redis-backup.service",
        "/etc/systemd/system/shop-app-redis-backup.timer",
        "/usr/local/lib/deploy/shop-app/redis_backup.py",
    ]
    assert "OnCalendar=*-*-* 03:00" in redis_backups.timer_unit(DURABLE)
    service = redis_backups.service_unit(DURABLE)
    assert '"--keep-daily" "3" "--keep-weekly" "2"' in service and "PrivateNetwork=yes" in service
    assert 'ReadWritePaths="/var/backups/deploy/shop-app/redis"' in service
    assert redis_backups.backup_files(PLAIN) == {}
    (step,) = redis_backups.backup_steps(DURABLE, HostState("10.0.0.1"))
    assert step.name == "redis backup timer"
    # Postgres's host is another one: nothing of Redis there.
    assert redis_backups.backup_steps(DURABLE, HostState("10.0.0.2")) == ()
    # Installed as wanted: nothing to do; durable off: the timer goes, the backups stay.
    files: dict[str, str | None] = dict(redis_backups.backup_files(DURABLE))
    owners: dict[str, dict[str, object] | None] = {
        "/var/backups/deploy/shop-app/redis": {"owner": "root", "group": "root", "mode": 0o700, "kind": "dir"}
    }
    done = HostState("10.0.0.1", files=files, owners=owners)
    assert redis_backups.backup_steps(DURABLE, done) == ()
    (removal,) = redis_backups.backup_steps(PLAIN, done)
    assert "backups are kept" in str(removal.actions[1])


def test_the_restore_command_names_the_dropin_it_may_switch_for_aof() -> None:
    command = redis_backups.restore_command(DURABLE, "20261207T030000Z")
    assert command.sudo
    assert command.argv[4:] == (
        "restore", "20261207T030000Z", "--dir", "/var/backups/deploy/shop-app/redis", "--app", "shop-app",
        "--dropin", "/etc/deploy/shop-app/services/redis.conf",
    )  # fmt: skip


def test_retention_and_records_on_the_host(tmp_path: Path) -> None:
    day = datetime.datetime(2026, 12, 7, 3, tzinfo=datetime.UTC)
    for back in range(10):
        stamp = (day - datetime.timedelta(days=back)).strftime("%Y%m%dT%H%M%SZ")
        (tmp_path / f"{stamp}.rdb").write_bytes(b"REDIS0010")
        (tmp_path / f"{stamp}.json").write_text(json.dumps({"status": "verified", "keys": back}))
    (tmp_path / "20261207T040000Z.rdb").write_bytes(b"REDIS")  # interrupted: no record
    records = redis_backup.records(str(tmp_path))
    assert records[-1]["status"] == "unverified" and records[-1]["service"] == "redis"
    removed = redis_backup.prune(str(tmp_path), 3, 1)
    assert removed == [f"202611{d}T030000Z" for d in (28, 29, 30)] + [
        f"2026120{d}T030000Z" for d in (1, 2, 3, 4)
    ]
    # A newer failure stays (to be seen); the kept ones are the 3 newest days.
    left = [r["stamp"] for r in redis_backup.records(str(tmp_path))]
    assert left == ["20261205T030000Z", "20261206T030000Z", "20261207T030000Z", "20261207T040000Z"]


def test_the_table_shows_keys_and_why_one_failed() -> None:
    now = datetime.datetime(2026, 12, 7, 5, 20, tzinfo=datetime.UTC).timestamp()
    records = [
        {"stamp": "20261206T030000Z", "size": 3675, "label": "scheduled", "status": "verified", "keys": 200},
        {"stamp": "20261207T030000Z", "size": 10, "label": "manual", "status": "failed", "reason": "bad"},
    ]
    assert lines(records, now) == [
        "BACKUP               AGE       SIZE  LABEL     CHECK             KEYS",
        "20261207T030000Z      2h       10 B  manual    failed               -",
        "  bad",
        "20261206T030000Z      1d    3.6 KiB  scheduled verified           200",
    ]


def test_the_verify_command_names_the_backup_and_the_folder() -> None:
    command = redis_backups.verify_command(DURABLE, "latest")
    assert command.sudo and command.argv[:3] == ("python3", "-I", "-c")
    assert command.argv[4:] == (
        "verify",
        "latest",
        "--dir",
        "/var/backups/deploy/shop-app/redis",
        "--app",
        "shop-app",
    )


@pytest.mark.parametrize(
    ("services", "args", "said"),
    [
        # Redis only, durable: verify and pull take its backups without --service.
        (
            "  redis: {persistence: rdb, durable: true}\n",
            ["verify", "--service", "postgres"],
            "deploy.yaml:8: services.postgres: not set: there is no database backup",
        ),
        ("  redis: {persistence: rdb}\n", ["verify", "--service", "redis"], "there is nothing to back up"),
        ("  redis: {persistence: rdb}\n", ["pull"], "there is nothing to back up"),
    ],
)
def test_verify_and_pull_refuse_a_service_without_backups_with_exit_2(
    tmp_path: Path, services: str, args: list[str], said: str
) -> None:
    from click.testing import CliRunner

    from deploy.cli import main

    config = tmp_path / "deploy.yaml"
    config.write_text(YAML.split("services:")[0] + "services:\n" + services, encoding="utf-8")
    result = CliRunner().invoke(main, ["services", args[0], "-c", str(config), *args[1:]])
    assert result.exit_code == 2 and said in result.output, result.output


def test_verify_and_pull_take_service_redis() -> None:
    from click.testing import CliRunner

    from deploy.cli import main

    for command in ("verify", "pull", "restore"):
        shown = CliRunner().invoke(main, ["services", command, "--help"]).output
        assert "--service [postgres|redis]" in shown, shown


def test_what_verify_says_of_a_redis_backup(capsys: pytest.CaptureFixture[str]) -> None:
    from deploy.cli.services_redis import verified

    verified(
        {"stamp": "20261207T030000Z", "status": "verified", "verify_seconds": 0.4, "loaded_keys": 7}, "h"
    )
    verified({"stamp": "20261207T040000Z", "status": "failed", "reason": "redis-check-rdb rejects it"}, "h")
    assert capsys.readouterr().out.splitlines() == [
        "h: Redis backup 20261207T030000Z: verified (redis-check-rdb, then loaded by a scratch redis-server "
        "in 0.4s): 7 keys, as the backup recorded",
        "h: Redis backup 20261207T040000Z: FAILED: redis-check-rdb rejects it",
    ]
