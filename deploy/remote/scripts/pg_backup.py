"""Postgres backups on the service host (run as root): dump, prove the dump restores, keep some, restore.

`python3 pg_backup.py backup|verify|list|restore ...`; run by the timer and by `deploy services`. Each
backup is DIR/<stamp>.dump (0600, in a root 0700 folder) with DIR/<stamp>.json beside it: what the
verification found (every table, its rows, size and sha256), or why the dump does not restore.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from .backup_store import (  # shipped inline: deploy.remote.scripts.host_program
    backup_records,
    file_sha256,
    find_backup,
    folder_lock,
    make_folder,
    new_backup_stamp,
    now_text,
    prune_backups,
    read_json,
    write_json,
)

DATABASE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TABLES_SQL = (
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_total_relation_size(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
    "ORDER BY 1"
)


def postgres(argv, stdout=None, stdin=None, env=None, check=True):
    """Run a Postgres client as the postgres user (peer authentication on the local socket)."""
    result = subprocess.run(
        argv,
        user="postgres",
        group="postgres",
        extra_groups=[],
        cwd="/",
        stdin=stdin,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {result.returncode}): {tail(result.stderr)}")
    return result


def tail(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    return " | ".join(text.strip().splitlines()[-5:])


def psql(database, sql):
    return ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql]


def dump_command(database):
    return ["pg_dump", "--format=custom", "--dbname", database]


def verify_restore_command(scratch):
    """pg_restore reads the dump from its stdin: root opens the file (0600) for the postgres user."""
    return ["pg_restore", "--exit-on-error", "--no-owner", "--no-privileges", "--dbname", scratch]


def restore_command(database):
    """One transaction: a restore that fails half-way leaves the database as it was."""
    return [
        "pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
        "--dbname", database,
    ]  # fmt: skip


def table_facts(database):
    """Every table of `database`: its rows, size on disk and a sha256 of its rows (in any order)."""
    listing = postgres(
        [
            "psql",
            "-X",
            "-q",
            "-At",
            "--field-separator-zero",
            "--record-separator-zero",
            "-d",
            database,
            "-c",
            TABLES_SQL,
        ]
    ).stdout
    tables = {}
    fields = listing.split(b"\0")
    if fields and fields[-1] == b"":
        fields = fields[:-1]
    for name, size in zip(fields[0::2], fields[1::2], strict=False):
        table = name.decode()
        # The name comes from quote_ident: a safe identifier.
        copy = postgres(psql(database, f"COPY (SELECT * FROM {table}) TO STDOUT")).stdout  # noqa: S608
        rows = copy.splitlines()
        digest = hashlib.sha256()
        for row_hash in sorted(hashlib.sha256(row).digest() for row in rows):
            digest.update(row_hash)
        tables[table] = {"rows": len(rows), "bytes": int(size), "sha256": digest.hexdigest()}
    return tables


def records(folder):
    """Every backup of `folder`, oldest first: its json, or status 'unverified' for a dump without one."""
    missing = "no verification record (the backup was interrupted while it was verified)"
    return backup_records(folder, ".dump", missing)


def drop_scratch(database):
    """Drop scratch databases an interrupted verification left behind."""
    # DATABASE matches [a-z_][a-z0-9_]* (checked in main): no quote can reach the query.
    sql = f"SELECT datname FROM pg_database WHERE datname LIKE '{database}\\_verify\\_%'"  # noqa: S608
    out = postgres(psql("postgres", sql))
    for name in out.stdout.decode().split():
        postgres(["dropdb", "--if-exists", name], check=False)


def verify(folder, database, stamp, expect_sha256=None):
    """Restore the dump into a scratch database and record what it holds; the json says why not.

    Verified again (`expect_sha256` given), the dump must also be the file that was written, holding
    the rows it held then."""
    dump = os.path.join(folder, f"{stamp}.dump")
    record = read_json(os.path.join(folder, f"{stamp}.json")) or {}
    before = record.pop("tables", None) if expect_sha256 else None
    found = file_sha256(dump)
    # The sha256 of the file as written stays the record's: a damaged file never becomes the reference.
    record.update({"stamp": stamp, "database": database, "dump_sha256": expect_sha256 or found})
    record.pop("reason", None)
    problems = []
    if found != record["dump_sha256"]:
        problems.append(f"the dump changed since it was written (its sha256 is now {found[:12]})")
    started = time.monotonic()
    scratch = f"{database}_verify_{stamp.lower()}"
    try:
        postgres(["dropdb", "--if-exists", scratch])
        postgres(["createdb", scratch])
        with open(dump, "rb") as fh:
            postgres(verify_restore_command(scratch), stdin=fh)
        record["tables"] = table_facts(scratch)
    except (RuntimeError, OSError) as exc:
        problems.insert(0, f"the dump does not restore: {exc}")
    finally:
        postgres(["dropdb", "--if-exists", scratch], check=False)
    if before is not None and "tables" in record:
        differ = sorted(
            name
            for name in set(before) | set(record["tables"])
            if (before.get(name) or {}).get("sha256") != (record["tables"].get(name) or {}).get("sha256")
        )
        if differ:
            problems.append(f"its rows differ from when it was verified: {', '.join(differ)}")
    record["status"] = "failed" if problems else "verified"
    if problems:
        record["reason"] = "; ".join(problems)
    record["verified_at"] = now_text()
    record["verify_seconds"] = round(time.monotonic() - started, 2)
    write_json(os.path.join(folder, f"{stamp}.json"), record)
    return record


def dump(folder, database, label):
    """pg_dump into a temporary file, renamed to <stamp>.dump only once complete and on disk."""
    for name in os.listdir(folder):
        if name.endswith(".partial"):
            os.unlink(os.path.join(folder, name))
    stamp = new_backup_stamp(folder, ".dump")
    final = os.path.join(folder, f"{stamp}.dump")
    tmp = f"{final}.partial"
    started = time.monotonic()
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
        # pg_dump runs as postgres and writes to root's file through the descriptor.
        postgres(dump_command(database), stdout=fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    record = {
        "stamp": stamp,
        "database": database,
        "label": label,
        "created_at": now_text(),
        "dump_seconds": round(time.monotonic() - started, 2),
        "status": "unverified",
    }
    return stamp, record


def prune(folder, keep_daily, keep_weekly):
    return prune_backups(folder, ".dump", keep_daily, keep_weekly)


def copy_out(folder, stamp, target, keep_daily, keep_weekly):
    """Copy a verified backup into `target` (same retention there); the json goes last."""
    make_folder(target)
    for ext in (".dump", ".json"):
        tmp = os.path.join(target, f".{stamp}{ext}.partial")
        shutil.copyfile(os.path.join(folder, stamp + ext), tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, os.path.join(target, stamp + ext))
    return prune(target, keep_daily, keep_weekly)


def copy_to_host(folder, stamp, args):
    """Send a verified backup to the other host over SSH as the restricted account (its forced command
    runs `receive`), the key made for it and the host key pinned; the json goes last. The receiver
    answers with the sha256 of what it wrote: it must be the sender's."""
    for ext in (".dump", ".json"):
        path = os.path.join(folder, stamp + ext)
        digest, size = file_sha256(path), os.path.getsize(path)
        ssh = [
            "ssh", "-F", "/dev/null", "-i", args.copy_key, "-p", str(args.copy_port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={args.copy_known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=30", f"{args.copy_user}@{args.copy_host}",
            "put", f"{stamp}{ext}", str(size), digest,
        ]  # fmt: skip
        with open(path, "rb") as fh:
            done = subprocess.run(ssh, stdin=fh, capture_output=True, check=False, timeout=3600)
        answer = done.stdout.decode("utf-8", "replace").strip()
        if done.returncode != 0 or answer != f"ok {digest}":
            raise RuntimeError(f"the copy to {args.copy_host} failed: {answer or tail(done.stderr)}")
    return f"{args.copy_user}@{args.copy_host}"


NAME = re.compile(r"^(\d{8}T\d{6}Z)\.(dump|json)$")


def receive(args):
    """The forced command of the receiving account: `put NAME SIZE SHA256` (from SSH_ORIGINAL_COMMAND)
    writes exactly SIZE bytes of stdin to DIR/NAME, through a partial file, and only when their sha256
    is SHA256; then retention. It never prints a file: the key can write backups, not read them."""
    words = os.environ.get("SSH_ORIGINAL_COMMAND", "").split()
    if len(words) != 4 or words[0] != "put" or not NAME.match(words[1]) or not words[2].isdigit():
        print("refused: only 'put STAMP.dump|STAMP.json SIZE SHA256' is allowed")
        return 4
    name, size, expected = words[1], int(words[2]), words[3]
    final = os.path.join(args.dir, name)
    tmp = os.path.join(args.dir, f".{name}.partial")
    digest, left = hashlib.sha256(), size
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
        while left > 0:
            block = sys.stdin.buffer.read(min(left, 1 << 20))
            if not block:
                break
            fh.write(block)
            digest.update(block)
            left -= len(block)
        fh.flush()
        os.fsync(fh.fileno())
    if left or digest.hexdigest() != expected:
        os.unlink(tmp)
        got = f"{size - left} of {size} bytes, sha256 {digest.hexdigest()[:12]}"
        print(f"refused: {name} arrived damaged ({got})")
        return 3
    os.replace(tmp, final)
    if name.endswith(".json"):
        prune(args.dir, args.keep_daily, args.keep_weekly)
    print(f"ok {digest.hexdigest()}")
    return 0


def backup(args):
    with folder_lock(args.dir):
        drop_scratch(args.database)
        stamp, record = dump(args.dir, args.database, args.label)
        record["reason"] = (
            "its verification did not finish (it was interrupted, or it is running now)"
            if args.verify
            else "not verified: services.postgres.backups.verify is false"
        )
        write_json(os.path.join(args.dir, f"{stamp}.json"), record)
        if args.verify:
            record = verify(args.dir, args.database, stamp)
        if record["status"] == "verified" and args.label != "safety":
            record["removed"] = prune(args.dir, args.keep_daily, args.keep_weekly)
            if args.copy_to:
                record["copied_to"] = args.copy_to
                record["removed_there"] = copy_out(
                    args.dir, stamp, args.copy_to, args.keep_daily, args.keep_weekly
                )
            if args.copy_host:
                try:
                    record["copied_to"] = copy_to_host(args.dir, stamp, args)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    record["copy_failed"] = str(exc)
                # The record here says where its copy went (the copy's own record was sent before).
                kept_record = read_json(os.path.join(args.dir, f"{stamp}.json")) or {}
                kept_record.pop("copy_failed", None)
                kept_record.update({k: record[k] for k in ("copied_to", "copy_failed") if k in record})
                write_json(os.path.join(args.dir, f"{stamp}.json"), kept_record)
    print(json.dumps(record, sort_keys=True))
    if record.get("copy_failed"):
        return 6
    return 0 if record["status"] in ("verified", "unverified") else 3


def find(folder, wanted):
    return find_backup(folder, ".dump", wanted)


def restore(args):
    """Restore a verified backup in one transaction, after a safety backup; rows checked afterwards."""
    for number in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(number, signal.SIG_IGN)
    with folder_lock(args.dir):
        record = find(args.dir, args.backup)
        if record.get("status") != "verified":
            why = f"{record.get('status')}: {record.get('reason', '')}"
            raise SystemExit(f"backup {record['stamp']} is {why}; restore only a verified backup")
        if file_sha256(record["path"]) != record.get("dump_sha256"):
            raise SystemExit(f"backup {record['stamp']}: the dump changed since it was verified")
        result = {"backup": record["stamp"]}
        stamp, safety = dump(args.dir, args.database, "safety")
        write_json(os.path.join(args.dir, f"{stamp}.json"), safety)
        safety = verify(args.dir, args.database, stamp)
        result["safety_backup"] = stamp
        if safety["status"] != "verified":
            result.update(status="refused", reason=f"the safety backup failed: {safety.get('reason')}")
            print(json.dumps(result, sort_keys=True))
            return 4
        env = dict(os.environ, PGOPTIONS="-c lock_timeout=30s")
        with open(record["path"], "rb") as fh:
            done = postgres(restore_command(args.database), stdin=fh, env=env, check=False)
        if done.returncode != 0:
            why = f"pg_restore failed; the database is as it was: {tail(done.stderr)}"
            result.update(status="failed", reason=why)
            print(json.dumps(result, sort_keys=True))
            return 3
        now = table_facts(args.database)
        expected = record.get("tables", {})
        differ = {
            name: {"expected": want.get("rows"), "found": now.get(name, {}).get("rows")}
            for name, want in expected.items()
            if now.get(name, {}).get("sha256") != want.get("sha256")
        }
        result.update(status="restored" if not differ else "mismatch", tables=now, differ=differ)
    print(json.dumps(result, sort_keys=True))
    return 0 if not differ else 5


def main(argv):
    parser = argparse.ArgumentParser(prog="pg_backup")
    parser.add_argument("action", choices=["backup", "verify", "list", "restore", "receive"])
    parser.add_argument("backup", nargs="?")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--database", default="")
    parser.add_argument("--label", default="manual")
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    parser.add_argument("--keep-daily", type=int, default=7)
    parser.add_argument("--keep-weekly", type=int, default=4)
    parser.add_argument("--copy-to", default="")
    for name in ("host", "user", "key", "known-hosts"):
        parser.add_argument(f"--copy-{name}", default="")
    parser.add_argument("--copy-port", type=int, default=22)
    args = parser.parse_args(argv)
    if args.action == "receive":
        return receive(args)
    if args.database and not DATABASE.match(args.database):
        raise SystemExit(f"not a database name deploy makes: {args.database!r}")
    if args.action == "list":
        print(json.dumps(records(args.dir), sort_keys=True))
        return 0
    if args.action == "backup":
        return backup(args)
    if args.action == "verify":
        with folder_lock(args.dir):
            record = find(args.dir, args.backup)
            record = verify(args.dir, args.database, record["stamp"], record.get("dump_sha256"))
        print(json.dumps(record, sort_keys=True))
        return 0 if record["status"] == "verified" else 3
    return restore(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
