"""Postgres backups on a real sandbox host: every backup proven by a restore, a restore that brings
every row back, a damaged dump flagged, and a killed backup or a killed restore that harms nothing.

Postgres is set up here by hand (Debian's package on the sandbox: the role and database SCHEMA.md
gives as defaults, flaskr/flaskr, and some tables); the services.postgres setup of the `pg` work can
take its place. The tests share one host and run in file order.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, get, make_project, private_sandbox

pytestmark = pytest.mark.hosts

FOLDER = "/var/backups/deploy/flaskr/postgres"
SERVICES = """\
services:
  postgres:
    backups: {schedule: daily, keep_daily: 7, keep_weekly: 4, copy_to: /var/backups/offsite}
"""
TABLES = (
    "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);"
    "INSERT INTO users (name) SELECT 'user ' || i FROM generate_series(1, 500) i;"
    "CREATE TABLE posts (id int PRIMARY KEY, author int REFERENCES users, body text);"
    "INSERT INTO posts SELECT i, 1 + i % 500, repeat(chr(65 + i % 26), i % 50) "
    "FROM generate_series(1, 1000) i;"
    "ALTER TABLE users OWNER TO flaskr; ALTER TABLE posts OWNER TO flaskr;"
)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # The second host receives the copies of the last test (copy_to naming a host); until then, the
    # app runs on the first one only.
    with private_sandbox(tmp_path_factory, "backups-sandbox", 2) as sandbox:
        yield sandbox


def as_postgres(box: Sandbox, sql: str, database: str = "flaskr", timeout: float = 300) -> str:
    result = box.run(
        box.hosts()[0],
        ["env", "-C", "/", "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v",
         "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def counts(box: Sandbox) -> dict[str, int]:
    return {t: int(as_postgres(box, f"SELECT count(*) FROM {t}")) for t in ("users", "posts")}


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("backups-project"), box.hosts()[:1])
    project.write_config(extra=SERVICES)
    project.commit("services.postgres with backups")
    host = box.hosts()[0]
    box.run(host, ["systemctl", "start", "postgresql"], check=True, timeout=120)
    as_postgres(box, "CREATE ROLE flaskr LOGIN", database="postgres")
    as_postgres(box, "CREATE DATABASE flaskr OWNER flaskr", database="postgres")
    as_postgres(box, TABLES)
    project.deploy("setup", check=True)
    project.deploy("push", check=True, timeout=300)
    return project


def records(project: Project) -> list[dict[str, object]]:
    result = project.deploy("services", "backups", "--json")
    assert result.returncode == 0
    return list(json.loads(result.stdout))


def on_host(box: Sandbox, command: str, timeout: float = 60) -> str:
    return box.run(box.hosts()[0], ["sh", "-c", command], timeout=timeout).stdout.strip()


def test_setup_installs_a_timer_whose_backup_is_verified_and_copied(project: Project, box: Sandbox) -> None:
    assert on_host(box, "systemctl is-enabled flaskr-pg-backup.timer") == "enabled"
    assert on_host(box, "stat -c '%U %a' " + FOLDER) == "root 700"
    again = project.deploy("setup", check=True)
    assert "already set up; nothing changed" in again.stdout
    result = box.run(box.hosts()[0], ["systemctl", "start", "flaskr-pg-backup.service"], timeout=300)
    assert result.returncode == 0, result.stderr + on_host(
        box, "journalctl -u flaskr-pg-backup -n 20 --no-pager"
    )
    (record,) = records(project)
    assert record["status"] == "verified" and record["label"] == "scheduled"
    tables = record["tables"]
    assert isinstance(tables, dict)
    assert {k: v["rows"] for k, v in tables.items()} == {"public.users": 500, "public.posts": 1000}
    stamp = record["stamp"]
    assert on_host(box, f"stat -c '%U %a' {FOLDER}/{stamp}.dump") == "root 600"
    copy = f"/var/backups/offsite/flaskr/postgres/{stamp}"
    assert on_host(box, f"sha256sum < {copy}.dump") == f"{record['dump_sha256']}  -"
    assert json.loads(on_host(box, f"cat {copy}.json"))["status"] == "verified"


def test_a_dropped_table_comes_back_with_every_row(project: Project, box: Sandbox, tmp_path: Path) -> None:
    made = project.deploy("services", "backup", check=True, timeout=300)
    assert "verified" in made.stdout and "2 tables, 1500 rows" in made.stdout
    before = counts(box)
    as_postgres(box, "DROP TABLE posts; DELETE FROM users WHERE id > 10")
    assert as_postgres(box, "SELECT count(*) FROM users") == "10"
    restored = project.deploy("services", "restore", check=True, timeout=600)
    assert (
        "safety backup" in restored.stdout
        and "every table's rows as the backup recorded them" in restored.stdout
    )
    assert counts(box) == before == {"users": 500, "posts": 1000}
    # The rows themselves, not only how many: the same checksums as the backup's record.
    (latest,) = [r for r in records(project) if r.get("label") == "manual"][-1:]
    assert (
        as_postgres(box, "SELECT md5(string_agg(name, ',' ORDER BY id)) FROM users")
        == hashlib.md5(",".join(f"user {i}" for i in range(1, 501)).encode()).hexdigest()
    )
    assert latest["status"] == "verified"
    # The safety backup holds the database as it was before the restore: 10 users, no posts.
    safety = [r for r in records(project) if r.get("label") == "safety"][-1]
    tables = safety["tables"]
    assert isinstance(tables, dict)
    assert {k: v["rows"] for k, v in tables.items()} == {"public.users": 10}
    # The app runs again, and the lock is free.
    status, _body = get(box.hosts()[0].address)
    assert status == 200
    assert "free" in project.deploy("lock", "status").stdout
    # The console and pull reach the same database and files.
    console = project.deploy("services", "console", "--", "-At", "-c", "SELECT count(*) FROM posts")
    assert console.stdout.strip().splitlines()[-1] == "1000"
    target = tmp_path / "latest.dump"
    project.deploy("services", "pull", "-o", str(target), check=True)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == latest["dump_sha256"]


@pytest.mark.parametrize("damage", ["truncate -s 3000", "flip"])
def test_a_damaged_dump_is_flagged_failed_by_the_verification(
    project: Project, box: Sandbox, damage: str
) -> None:
    project.deploy("services", "backup", check=True, timeout=300)
    stamp = str(records(project)[-1]["stamp"])
    path = f"{FOLDER}/{stamp}.dump"
    if damage == "flip":
        # 256 bytes in the middle of the dump turned over: the compressed table data no longer inflates.
        on_host(box, f"size=$(stat -c %s {path}); printf '%0256d' 0 | tr 0 '\\377' | "
                f"dd of={path} bs=1 seek=$((size / 2)) conv=notrunc status=none")  # fmt: skip
    else:
        on_host(box, f"{damage} {path}")
    result = project.deploy("services", "verify", stamp, timeout=300)
    assert result.returncode == 1
    assert "FAILED: the dump does not restore" in result.stdout
    (record,) = [r for r in records(project) if r["stamp"] == stamp]
    assert record["status"] == "failed" and "sha256" in str(record["reason"])
    listing = project.deploy("services", "backups").stdout
    assert f"{stamp}" in listing and "failed" in listing
    # A restore never takes it: naming it is refused, and the database is left alone.
    refused = project.deploy("services", "restore", stamp, timeout=300)
    assert refused.returncode == 1 and "restore only a verified backup" in refused.stdout + refused.stderr
    assert counts(box) == {"users": 500, "posts": 1000}
    assert "free" in project.deploy("lock", "status").stdout


def _big_table(box: Sandbox) -> None:
    """1.5 million rows (about 60 MB of dump): slow enough to kill a backup or a restore midway."""
    if as_postgres(box, "SELECT to_regclass('public.events') IS NOT NULL") == "t":
        return
    as_postgres(
        box,
        "CREATE TABLE events (id bigint, payload text);"
        "INSERT INTO events SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 1500000) i;"
        "ALTER TABLE events OWNER TO flaskr",
        timeout=600,
    )


def _wait_for(box: Sandbox, command: str, timeout: float = 300) -> str:
    """The output of `command` once it prints something. A pgrep -f pattern is written as 'wor[d]',
    or it finds the shell that runs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = on_host(box, command)
        if out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"never true on the host: {command}")


def _kill_backup(project: Project, box: Sandbox, client: str) -> str:
    """Start `deploy services backup`, then kill its host program and `client` (pg_dump or the
    verification's pg_restore) with SIGKILL once `client` runs; return deploy's output."""
    running = project.popen("services", "backup")
    try:
        pid = _wait_for(box, f"pgrep -x {client}").split()[0]
        parent = on_host(box, f"ps -o ppid= -p {pid}")
        on_host(box, f"kill -KILL {parent} {pid}")
        output, _ = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 1, output
    return output


def test_a_backup_killed_midway_leaves_no_good_looking_dump(project: Project, box: Sandbox) -> None:
    _big_table(box)
    before = {str(r["stamp"]) for r in records(project)}
    # Killed while it dumps: only a .partial file, which never lists.
    _kill_backup(project, box, "pg_dump")
    assert {str(r["stamp"]) for r in records(project)} == before, "a killed backup must not list"
    assert on_host(box, f"ls {FOLDER} | grep -c 'partial$'") == "1"
    assert counts(box) == {"users": 500, "posts": 1000}
    assert as_postgres(box, "SELECT count(*) FROM events") == "1500000"
    # Killed while it verifies: the dump lists as unverified, with why; its scratch database stays.
    _kill_backup(project, box, "pg_restore")
    (new,) = [r for r in records(project) if str(r["stamp"]) not in before]
    assert new["status"] == "unverified" and "did not finish" in str(new["reason"])
    scratch = "SELECT count(*) FROM pg_database WHERE datname LIKE 'flaskr_verify_%'"
    assert as_postgres(box, scratch, database="postgres") == "1"
    # The next backup clears the half file and the scratch database, and is verified.
    project.deploy("services", "backup", check=True, timeout=900)
    assert on_host(box, f"ls {FOLDER} | grep -c 'partial$'") == "0"
    assert as_postgres(box, scratch, database="postgres") == "0"
    latest = records(project)
    assert latest[-1]["status"] == "verified"
    # The unverified one is older than the newest verified backup: retention removed it.
    assert new["stamp"] not in {r["stamp"] for r in latest}


def test_deploy_killed_during_a_restore_leaves_the_database_whole_and_the_lock_recoverable(
    project: Project, box: Sandbox
) -> None:
    _big_table(box)
    # The backup the test before made last (verified, with every row of the big table) is the one to
    # restore; run alone, this test makes it.
    latest = records(project)[-1:]
    if not latest or latest[0]["status"] != "verified" or _rows(latest[0], "public.events") != 1500000:
        made = project.deploy("services", "backup", check=True, timeout=900)
        assert "verified" in made.stdout
        latest = records(project)[-1:]
    stamp = str(latest[0]["stamp"])
    assert latest[0]["status"] == "verified" and _rows(latest[0], "public.events") == 1500000
    as_postgres(box, "DELETE FROM events WHERE id > 1000; DELETE FROM posts; DELETE FROM users WHERE id > 3")
    running = project.popen("services", "restore", stamp)
    try:
        _wait_for(box, "pgrep -f -- '--single-transactio[n]'", timeout=600)
        running.send_signal(signal.SIGKILL)
        running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    # The restore on the host either completes or rolls back: never half of it.
    _wait_for(box, "pgrep -f -- '--single-transactio[n]' >/dev/null || echo gone", timeout=600)
    state = counts(box) | {"events": int(as_postgres(box, "SELECT count(*) FROM events"))}
    assert state in (
        {"users": 3, "posts": 0, "events": 1000},
        {"users": 500, "posts": 1000, "events": 1500000},
    )
    # The lock of the killed deploy frees itself; the next restore takes it over and starts the app. The
    # rows go again first: whichever way the killed one ended, this restore must bring them back (and its
    # own safety backup stays small).
    as_postgres(box, "DELETE FROM events WHERE id > 1000; DELETE FROM posts; DELETE FROM users WHERE id > 3")
    again = project.deploy("services", "restore", stamp, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the database is whole" in again.stdout
    assert counts(box) == {"users": 500, "posts": 1000}
    assert as_postgres(box, "SELECT count(*) FROM events") == "1500000"
    status, _body = get(box.hosts()[0].address)
    assert status == 200
    assert "free" in project.deploy("lock", "status").stdout
    # The tests after need no big table: without it their backups are as small as when run alone.
    as_postgres(box, "DROP TABLE events")


def _rows(record: dict[str, object], table: str) -> object:
    tables = record.get("tables")
    return tables.get(table, {}).get("rows") if isinstance(tables, dict) else None


# --- Redis with durable: true, and a change of the services (issue #18's rest) ------------------

REDIS_CLI = (
    "REDISCLI_AUTH=$(sed -n 's/^REDIS_ADMIN_PASSWORD=//p' /etc/deploy/flaskr/services/redis.env) "
    "redis-cli --no-auth-warning --user deploy-admin -s /run/redis/redis-server.sock"
)
JOB = "jobs:\n  cleanup: {command: 'true', schedule: hourly}\n"


def redis_cli(box: Sandbox, *args: str) -> str:
    return on_host(box, f"{REDIS_CLI} {' '.join(args)}")


def test_a_durable_redis_is_backed_up_checked_listed_and_restored_with_the_app_stopped(
    project: Project, box: Sandbox
) -> None:
    project.write_config(extra=SERVICES + "  redis: {durable: true, persistence: aof}\n" + JOB)
    project.commit("services.redis durable, a job")
    setup = project.deploy("setup", timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    # REDIS_URL is new in the env file: the running app started again (the other slot, then the switch).
    assert "the service URLs in the app's env file changed on" in setup.stdout
    assert "the app runs with the new service URLs" in setup.stdout
    assert on_host(box, "systemctl is-enabled flaskr-redis-backup.timer") == "enabled"
    # 200 keys in one redis-cli session (its commands from stdin), not 200 SSH round trips.
    stored = on_host(box, f"seq 0 199 | sed 's/.*/SET user:& name-&/' | {REDIS_CLI}")
    assert stored.split() == ["OK"] * 200, stored
    made = project.deploy("services", "backup", "--service", "redis", timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "checked by redis-check-rdb: 200 keys" in made.stdout
    listing = project.deploy("services", "backups", check=True).stdout
    assert "/var/backups/deploy/flaskr/postgres" in listing
    assert "/var/backups/deploy/flaskr/redis (Redis)" in listing
    (record,) = [r for r in records(project) if r.get("service") == "redis"]
    assert record["status"] == "verified" and record["keys"] == 200
    rdb = f"/var/backups/deploy/flaskr/redis/{record['stamp']}.rdb"
    assert on_host(box, f"stat -c '%U %a' {rdb}") == "root 600"
    redis_cli(box, "flushall")
    redis_cli(box, "set", "after", "backup")
    restored = project.deploy("services", "restore", "--service", "redis", timeout=600)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    # The whole app stopped: its web slot and its job's timer, and started again after.
    assert "stopping the app:" in restored.stdout and "flaskr-job-cleanup.timer" in restored.stdout
    assert "restored Redis backup" in restored.stdout and "200 keys" in restored.stdout
    assert redis_cli(box, "get", "user:7") == "name-7"
    assert redis_cli(box, "exists", "after") == "0"
    # With persistence aof, Redis wrote its AOF again from the restored data: a restart keeps it.
    assert redis_cli(box, "config", "get", "appendonly").splitlines()[-1] == "yes"
    on_host(box, "systemctl restart redis-server && sleep 1")
    assert redis_cli(box, "dbsize") == "200"
    assert on_host(box, "systemctl is-active flaskr-job-cleanup.timer") == "active"
    status, _body = get(box.hosts()[0].address)
    assert status == 200
    safety = [r for r in records(project) if r.get("service") == "redis" and r.get("label") == "safety"]
    assert safety and safety[-1]["keys"] == 1
    assert "free" in project.deploy("lock", "status").stdout


def test_a_service_change_says_its_downtime_and_a_removed_one_keeps_its_data(
    project: Project, box: Sandbox
) -> None:
    project.write_config(extra=SERVICES + "  redis: {durable: true, persistence: rdb}\n" + JOB)
    project.commit("redis: rdb")
    changed = project.deploy("setup", timeout=600)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "redis-server restarts (Redis has no reload)" in changed.stdout
    assert "its data is kept (persistence: rdb" in changed.stdout
    assert "Redis was restarted: the app could not use it for at most" in changed.stdout
    assert redis_cli(box, "dbsize") == "200"
    # Removed from deploy.yaml: REDIS_URL leaves the env file, the app starts again, Redis keeps running.
    project.write_config(extra=SERVICES + JOB)
    project.commit("no redis")
    removed = project.deploy("setup", timeout=600)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "services.redis is no longer in deploy.yaml" in removed.stdout
    assert "still runs on" in removed.stdout and "never deletes data" in removed.stdout
    assert "the app runs with the new service URLs" in removed.stdout
    assert on_host(box, "grep -c '^REDIS_URL=' /etc/flaskr/env || true") == "0"
    assert redis_cli(box, "dbsize") == "200"
    assert on_host(box, "systemctl is-enabled flaskr-redis-backup.timer || true") != "enabled"
    again = project.deploy("setup", timeout=600)
    assert "the app runs with the new service URLs" not in again.stdout


def on_second(box: Sandbox, command: str, timeout: float = 60) -> str:
    return box.run(box.hosts()[1], ["sh", "-c", command], timeout=timeout).stdout.strip()


def test_copies_to_another_host_go_through_a_key_that_can_only_write_backups(
    project: Project, box: Sandbox
) -> None:
    first, second = box.hosts()[0].address, box.hosts()[1].address
    project.hosts = box.hosts()
    services = SERVICES.replace("copy_to: /var/backups/offsite", f"copy_to: {second}")
    project.write_config(extra=services)
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(f", {second}]", f", {{address: {second}, roles: [backup]}}]"), encoding="utf-8"
    )
    project.commit("backups copied to the second host")
    setup = project.deploy("setup", timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "backup copy key: ready" in setup.stdout and "backup copy target: ready" in setup.stdout
    # The timer's own run, without deploy: a verified backup, then its copy on the second host.
    result = box.run(box.hosts()[0], ["systemctl", "start", "flaskr-pg-backup.service"], timeout=600)
    assert result.returncode == 0, result.stderr + on_host(
        box, "journalctl -u flaskr-pg-backup -n 30 --no-pager"
    )
    record = [r for r in records(project) if r.get("label") == "scheduled"][-1]
    assert record["status"] == "verified"
    assert record["copied_to"] == f"flaskr-backups@{second}"
    target = f"/var/backups/deploy/flaskr/postgres-copies/{record['stamp']}"
    assert on_second(box, f"sha256sum < {target}.dump") == f"{record['dump_sha256']}  -"
    assert on_second(box, f"stat -c '%U %a' {target}.dump") == "flaskr-backups 600"
    assert json.loads(on_second(box, f"cat {target}.json"))["status"] == "verified"
    # The key lives on the service host only, root's; the target's host key is pinned there.
    key = "/etc/deploy/flaskr/services/backup-copy/id_ed25519"
    assert on_host(box, f"stat -c '%U %a' {key}") == "root 600"
    assert on_second(box, f"test -e {key} && echo there || echo absent") == "absent"
    ssh = (
        f"ssh -F /dev/null -i {key} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile=/etc/deploy/flaskr/services/backup-copy/known_hosts flaskr-backups@{second}"
    )
    # The key runs nothing but the receiver: no shell, no reading a file back.
    assert "refused: only 'put" in on_host(box, f"{ssh} cat {target}.dump 2>&1")
    assert "refused: only 'put" in on_host(box, f"{ssh} 2>&1 < /dev/null")
    # What arrives damaged is dropped.
    damaged = on_host(box, f"printf abc | {ssh} put 20260101T000000Z.dump 3 {'0' * 64} 2>&1")
    assert "arrived damaged" in damaged
    assert on_second(box, "ls /var/backups/deploy/flaskr/postgres-copies | grep -c 20260101 || true") == "0"
    # Another host key under the target's address is refused (the pinned one only).
    assert "Host key verification failed" in on_host(
        box,
        f"{ssh.replace('/etc/deploy/flaskr/services/backup-copy/known_hosts', '/dev/null')} put x 1 y 2>&1",
    )
    assert first != second
    again = project.deploy("setup", timeout=600)
    assert "backup copy" not in again.stdout
