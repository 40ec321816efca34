"""Postgres backups without hosts: retention as data, the host program's command lines and records, the
timer setup installs (only where it differs), the JSON the CLI reads and the table it prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import main
from deploy.cli.services import _ssh_argv, backup_lines
from deploy.config.loader import ConfigError, load_text
from deploy.layout import backup_paths
from deploy.plan import Command, Upload
from deploy.push import backups
from deploy.remote.facts import HostState, probe_command
from deploy.remote.scripts import backup_store, pg_backup

pytestmark = pytest.mark.unit

YAML = """\
app:
  name: shop-app
  wsgi: "shop:create_app()"
server:
  domains: [shop.example.com]
  hosts: [10.0.0.1, 10.0.0.2]
  tls: false
services:
  postgres:
    host: 10.0.0.2
    backups: {schedule: "*-*-* 03:00", keep_daily: 3, keep_weekly: 2, copy_to: /mnt/offsite}
"""
CONFIG = load_text(YAML)


# --- retention, as data -------------------------------------------------------------------------


def test_retention_keeps_the_newest_of_each_recent_day_and_week() -> None:
    stamps = [
        "20261201T030000Z",  # Tue, week 49
        "20261202T030000Z",
        "20261203T030000Z",
        "20261205T030000Z",
        "20261205T150000Z",  # two on Saturday: only the newer counts for the day
        "20261206T030000Z",  # Sun, still week 49
        "20261207T030000Z",  # Mon, week 50
        "20261124T030000Z",  # week 48
        "20261117T030000Z",  # week 47
    ]
    assert backup_store.kept(stamps, 3, 0) == {"20261207T030000Z", "20261206T030000Z", "20261205T150000Z"}
    # Weeks: the newest of week 50, 49, 48.
    assert backup_store.kept(stamps, 0, 3) == {"20261207T030000Z", "20261206T030000Z", "20261124T030000Z"}
    assert backup_store.kept(stamps, 2, 4) == {
        "20261207T030000Z",
        "20261206T030000Z",
        "20261124T030000Z",
        "20261117T030000Z",
    }
    # Nothing kept by the rules: the two newest stay anyway (a fallback if the newest is damaged).
    assert backup_store.kept(stamps, 0, 0) == {"20261207T030000Z", "20261206T030000Z"}
    assert backup_store.kept(["20261207T030000Z"], 0, 0) == {"20261207T030000Z"}
    assert backup_store.kept([], 7, 4) == set()


def test_only_verified_backups_count_and_failures_newer_than_them_stay() -> None:
    records = [
        {"stamp": "20261201T030000Z", "status": "verified"},
        {"stamp": "20261202T030000Z", "status": "failed"},
        {"stamp": "20261203T030000Z", "status": "verified"},
        {"stamp": "20261203T100000Z", "status": "verified", "label": "safety"},
        {"stamp": "20261204T030000Z", "status": "unverified"},
        {"stamp": "20261205T030000Z", "status": "verified"},
        {"stamp": "20261206T030000Z", "status": "failed"},
    ]
    # keep 2 days: 05 and 03; 01 goes, the failure of the 2nd and the unverified 4th are older than
    # the newest verified backup; the failure of the 6th is newer: it stays to be seen. The safety
    # backup is less than 2 days older than the newest backup: it stays.
    assert backup_store.to_remove(records, 2, 0) == [
        "20261201T030000Z",
        "20261202T030000Z",
        "20261204T030000Z",
    ]
    # keep 1 day: the 3rd stays all the same (the two newest verified always do); the safety backup
    # is more than a day older than the newest: it goes.
    assert backup_store.to_remove(records, 1, 0) == [
        "20261201T030000Z",
        "20261202T030000Z",
        "20261203T100000Z",
        "20261204T030000Z",
    ]
    assert backup_store.to_remove([*records, {"stamp": "20261207T030000Z", "status": "verified"}], 0, 0) == [
        "20261201T030000Z",
        "20261202T030000Z",
        "20261203T030000Z",
        "20261203T100000Z",
        "20261204T030000Z",
        "20261206T030000Z",
    ]
    # No verified backup: nothing is removed, whatever the numbers.
    assert backup_store.to_remove([{"stamp": "20261206T030000Z", "status": "failed"}], 0, 0) == []


def test_records_list_dumps_only_and_a_dump_without_its_json_is_unverified(tmp_path: Path) -> None:
    (tmp_path / "20261205T030000Z.dump").write_bytes(b"x" * 10)
    (tmp_path / "20261205T030000Z.json").write_text(json.dumps({"status": "verified", "tables": {}}))
    (tmp_path / "20261206T030000Z.dump").write_bytes(b"y" * 3)  # verification interrupted
    (tmp_path / "20261207T030000Z.dump.partial").write_bytes(b"z")  # dump interrupted: never listed
    (tmp_path / "20261207T030000Z.json").write_text("{}")  # a json without its dump: not a backup
    (tmp_path / "notes.dump").write_bytes(b"")
    records = pg_backup.records(str(tmp_path))
    assert [(r["stamp"], r["status"], r["size"]) for r in records] == [
        ("20261205T030000Z", "verified", 10),
        ("20261206T030000Z", "unverified", 3),
    ]
    # The unverified one is newer than the newest verified backup: it stays, to be seen.
    assert pg_backup.prune(str(tmp_path), 1, 0) == []
    (tmp_path / "20261208T030000Z.dump").write_bytes(b"w")
    (tmp_path / "20261208T030000Z.json").write_text(json.dumps({"status": "verified"}))
    assert pg_backup.prune(str(tmp_path), 1, 0) == ["20261206T030000Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261205T030000Z.dump",
        "20261205T030000Z.json",
        "20261207T030000Z.dump.partial",
        "20261207T030000Z.json",
        "20261208T030000Z.dump",
        "20261208T030000Z.json",
        "notes.dump",
    ]


def test_the_host_program_refuses_a_database_name_it_would_not_make() -> None:
    with pytest.raises(SystemExit, match="not a database name"):
        pg_backup.main(["list", "--dir", "/nonexistent", "--database", "x'; drop"])


# --- command lines ------------------------------------------------------------------------------


def test_the_client_command_lines() -> None:
    assert pg_backup.dump_command("shop_app") == ["pg_dump", "--format=custom", "--dbname", "shop_app"]
    assert pg_backup.verify_restore_command("shop_app_verify_x") == [
        "pg_restore",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--dbname",
        "shop_app_verify_x",
    ]
    assert pg_backup.restore_command("shop_app") == [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--dbname",
        "shop_app",
    ]


def test_backup_arguments_follow_the_config() -> None:
    assert CONFIG.database == "shop_app"
    assert backups.service_host(CONFIG) == "10.0.0.2"
    assert backups.backup_args(CONFIG, "scheduled") == (
        "backup",
        "--dir",
        "/var/backups/deploy/shop-app/postgres",
        "--database",
        "shop_app",
        "--label",
        "scheduled",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--copy-to",
        "/mnt/offsite/shop-app/postgres",
    )
    bare = load_text(
        YAML.replace("    host: 10.0.0.2\n", "").replace(", copy_to: /mnt/offsite", ", verify: false")
    )
    assert backups.service_host(bare) == "10.0.0.1"
    assert backups.backup_args(bare, "manual")[-1] == "--no-verify"
    command = backups.restore_command(CONFIG, "latest")
    assert command.sudo and command.argv[:3] == ("python3", "-I", "-c")
    assert command.argv[3] == backups.PG_BACKUP
    assert command.argv[4:] == (
        "restore",
        "latest",
        "--dir",
        "/var/backups/deploy/shop-app/postgres",
        "--database",
        "shop_app",
    )


def test_parse_json_takes_the_last_json_line() -> None:
    assert backups.parse_json('noise\n{"a": 1}\n[1, 2]\n') == [1, 2]
    with pytest.raises(ValueError, match="printed no JSON"):
        backups.parse_json("pg_dump: error: connection failed\n")


def test_console_reaches_the_postgres_host_with_the_configs_ssh_settings() -> None:
    config = load_text(
        YAML.replace(
            "  tls: false\n",
            "  tls: false\n  ssh: {user: admin, key: /k, known_hosts: /kh, port: 2222}\n",
        )
    )
    assert _ssh_argv(config, "10.0.0.2", ("psql",)) == [
        "ssh",
        "-t",
        "-o",
        "UserKnownHostsFile=/kh",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        "2222",
        "-i",
        "/k",
        "admin@10.0.0.2",
        "sudo psql",
    ]


# --- the timer ----------------------------------------------------------------------------------


def test_the_service_is_a_hardened_oneshot_that_writes_only_the_backup_folders() -> None:
    unit = backups.service_unit(CONFIG)
    assert "Type=oneshot" in unit and "Requires=postgresql.service" in unit
    assert 'ExecStart="/usr/bin/python3" "-I" "/usr/local/lib/deploy/shop-app/pg_backup.py" "backup"' in unit
    assert 'ReadWritePaths="/var/backups/deploy/shop-app/postgres" "/mnt/offsite/shop-app/postgres"' in unit
    for line in (
        "ProtectSystem=strict",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "UMask=0077",
    ):
        assert line in unit.splitlines()
    timer = backups.timer_unit(CONFIG)
    assert "OnCalendar=*-*-* 03:00" in timer.splitlines() and "Persistent=true" in timer.splitlines()


@pytest.mark.tools
def test_systemd_analyze_accepts_the_units_and_scores_the_service_safe(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed")
    service = tmp_path / "shop-app-pg-backup.service"
    service.write_text(backups.service_unit(CONFIG))
    (tmp_path / "shop-app-pg-backup.timer").write_text(backups.timer_unit(CONFIG))
    out = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=25", str(service)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "err"},
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _host(host: str, **files: str | None) -> HostState:
    paths = backup_paths(CONFIG)
    root_only = dict(backups.ROOT_ONLY)
    return HostState(
        host,
        files={
            paths.program: files.get("program"),
            paths.service: files.get("service"),
            paths.timer: files.get("timer"),
        },
        owners={folder: root_only for folder in backups.backup_folders(CONFIG)},
    )


def test_setup_installs_the_timer_on_the_postgres_host_only_and_only_what_differs() -> None:
    assert backups.backup_steps(CONFIG, _host("10.0.0.1")) == ()
    (step,) = backups.backup_steps(CONFIG, _host("10.0.0.2"))
    uploads = [a for a in step.actions if isinstance(a, Upload)]
    assert [u.remote_path for u in uploads] == [
        "/usr/local/lib/deploy/shop-app/pg_backup.py",
        "/etc/systemd/system/shop-app-pg-backup.service",
        "/etc/systemd/system/shop-app-pg-backup.timer",
    ]
    assert all((u.mode, u.owner) == (0o644, "root") for u in uploads)
    commands = [a.argv for a in step.actions if isinstance(a, Command)]
    assert ("systemctl", "enable", "--now", "shop-app-pg-backup.timer") in commands
    files = backups.backup_files(CONFIG)
    done = _host(
        "10.0.0.2",
        program=files["/usr/local/lib/deploy/shop-app/pg_backup.py"],
        service=files["/etc/systemd/system/shop-app-pg-backup.service"],
        timer=files["/etc/systemd/system/shop-app-pg-backup.timer"],
    )
    assert backups.backup_steps(CONFIG, done) == ()
    # The schedule changes: only the timer is uploaded again.
    later = load_text(YAML.replace("*-*-* 03:00", "hourly"))
    (step,) = backups.backup_steps(later, done)
    assert [a.remote_path for a in step.actions if isinstance(a, Upload)] == [
        "/etc/systemd/system/shop-app-pg-backup.timer"
    ]
    # Backups gone from deploy.yaml: the timer is disabled and removed, the backups stay.
    gone = load_text(YAML.split("    backups:")[0])
    (step,) = backups.backup_steps(gone, done)
    argvs = [a.argv for a in step.actions if isinstance(a, Command)]
    assert ("systemctl", "disable", "--now", "shop-app-pg-backup.timer") in argvs
    assert not any("/var/backups" in " ".join(argv) for argv in argvs)


def test_setup_makes_the_backup_folders_root_only() -> None:
    state = HostState("10.0.0.2", owners={})
    (step,) = backups.backup_steps(CONFIG, state)
    made = [a.argv[-4:] for a in step.actions if isinstance(a, Command) and "dir" in a.argv]
    assert ("/var/backups/deploy/shop-app/postgres", "root", "root", "0700") in made
    assert ("/mnt/offsite/shop-app/postgres", "root", "root", "0700") in made


def test_the_probe_reads_the_timers_files() -> None:
    argv = " ".join(probe_command(CONFIG).argv)
    assert "/etc/systemd/system/shop-app-pg-backup.timer" in argv
    assert "/var/backups/deploy/shop-app/postgres" in argv


# --- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("host: 10.0.0.2", "host: 10.0.0.9"),
            "services.postgres.host: '10.0.0.9' is none of server.hosts (10.0.0.1, 10.0.0.2)",
        ),
        (
            ("copy_to: /mnt/offsite", "copy_to: offsite"),
            "copy_to: 'offsite' is not another of server.hosts (10.0.0.1, 10.0.0.2)",
        ),
        (
            # The service's own host is no other host.
            ("copy_to: /mnt/offsite", "copy_to: 10.0.0.2"),
            "services.postgres.backups.copy_to: '10.0.0.2' is not another of server.hosts",
        ),
        (
            ("copy_to: /mnt/offsite", "copy_to: /mnt/../etc"),
            "services.postgres.backups.copy_to: expected an absolute path",
        ),
        (
            ('"*-*-* 03:00"', '"daily; reboot"'),
            "services.postgres.backups.schedule: 'daily;' is not a weekday, a date or a time",
        ),
        (("keep_daily: 3", "keep_daily: -1"), "services.postgres.backups.keep_daily"),
        (("keep_daily: 3", "keep_dialy: 3"), "services.postgres.backups.keep_dialy"),
    ],
)
def test_bad_backup_settings_name_file_line_and_key(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(YAML.replace(*change), "deploy.yaml")
    text = str(info.value.problems[0])
    assert text.startswith("deploy.yaml:"), text
    assert message in text


# --- what the CLI prints ------------------------------------------------------------------------


def test_the_backups_table_shows_newest_first_with_the_verification() -> None:
    records = [
        {
            "stamp": "20261206T030000Z",
            "size": 18143,
            "label": "scheduled",
            "status": "verified",
            "tables": {"public.users": {"rows": 500}, "public.posts": {"rows": 1000}},
        },
        {"stamp": "20261207T030000Z", "size": 4000, "label": "manual", "status": "failed", "reason": "bad"},
    ]
    now = 1796620800.0  # 2026-12-07T05:20:00Z
    assert backup_lines(records, now) == [
        "BACKUP               AGE       SIZE  LABEL     VERIFICATION TABLES      ROWS",
        "20261207T030000Z      2h    3.9 KiB  manual    failed            -         -",
        "  bad",
        "20261206T030000Z      1d   17.7 KiB  scheduled verified          2      1500",
    ]


def test_services_commands_need_services_postgres(tmp_path: Path) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text(YAML.split("services:")[0], encoding="utf-8")
    for command in (["backups"], ["backup"], ["restore"], ["pull"], ["console", "--", "-c", "select 1"]):
        result = CliRunner().invoke(main, ["services", command[0], "-c", str(config), *command[1:]])
        assert result.exit_code == 2, result.output
        # No services: in the file: no line to name, the key still named.
        assert result.output.startswith(f"error: {config}: services"), result.output
        assert "there is nothing to back up" in result.output or "no database" in result.output
