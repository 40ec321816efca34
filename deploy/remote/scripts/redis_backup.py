"""Redis backups on its host (run as root), for services.redis.durable: snapshot, check, verify, list,
restore.

`python3 redis_backup.py backup|verify|list|restore [BACKUP] --dir DIR --app APP ...`; run by the timer and by
`deploy services`. A backup is DIR/<stamp>.rdb (0600, in a root 0700 folder): the RDB file a BGSAVE
wrote once it completed (with persistence aof too: an RDB holds the same data, and loads faster), and
DIR/<stamp>.json beside it: its sha256, size, and what `redis-check-rdb` found (keys), or why it failed.
Redis is reached as deploy's admin user through its unix socket (the password from the credentials
file, in the environment of redis-cli only).
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .backup_store import (  # shipped inline: deploy.remote.scripts.host_program
    backup_records,
    file_sha256,
    find_backup,
    folder_lock,
    new_backup_stamp,
    now_text,
    prune_backups,
    read_json,
    write_json,
)

SOCKET = "/run/redis/redis-server.sock"
KEYS_READ = re.compile(r"(\d+) keys read")


def credentials(app):
    values = {}
    with open(f"/etc/deploy/{app}/services/redis.env", encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.rstrip("\n").partition("=")
            values[key] = value
    return values.get("REDIS_ADMIN_USER") or "deploy-admin", values["REDIS_ADMIN_PASSWORD"]


class Redis:
    """redis-cli as deploy's admin user through the unix socket (app None: a scratch server's socket,
    whose default user needs no password)."""

    def __init__(self, app, socket=SOCKET):
        self.socket = socket
        self.login = []
        self.env = dict(os.environ)
        if app is not None:
            user, password = credentials(app)
            self.login = ["--user", user]
            self.env["REDISCLI_AUTH"] = password

    def __call__(self, *args, check=True):
        argv = ["redis-cli", "--no-auth-warning", *self.login, "-s", self.socket, *args]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        out = result.stdout.strip()
        if check and (result.returncode != 0 or out.startswith(("ERR", "NOAUTH", "WRONGPASS", "NOPERM"))):
            raise RuntimeError(f"redis-cli {args[0]}: {out or result.stderr.strip()}")
        return out

    def info(self, section):
        lines = self(*("info", section)).replace("\r", "").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def config(self, name):
        return self("config", "get", name).splitlines()[-1]

    def keys(self):
        """Every database's number of keys."""
        total = 0
        for value in self.info("keyspace").values():
            fields = dict(part.split("=", 1) for part in value.split(","))
            total += int(fields.get("keys", 0))
        return total


def snapshot(redis, timeout=3600):
    """Ask for a BGSAVE and wait until one that started after the ask has completed; the RDB's path."""
    before = int(redis("lastsave"))
    deadline = time.monotonic() + timeout
    while True:
        answer = redis("bgsave", check=False)
        if "started" in answer or "scheduled" in answer:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"BGSAVE was not accepted: {answer}")
        time.sleep(0.5)  # another save in progress: wait for it, then ask again
    while True:
        info = redis.info("persistence")
        if info.get("rdb_bgsave_in_progress") == "0" and int(redis("lastsave")) > before:
            break
        if info.get("rdb_bgsave_in_progress") == "0" and info.get("rdb_last_bgsave_status") != "ok":
            raise RuntimeError("Redis's BGSAVE failed (see /var/log/redis/redis-server.log)")
        if time.monotonic() > deadline:
            raise RuntimeError("Redis's BGSAVE did not finish in time")
        time.sleep(0.2)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise RuntimeError("Redis's BGSAVE failed (see /var/log/redis/redis-server.log)")
    return os.path.join(redis.config("dir"), redis.config("dbfilename"))


def check_rdb(path):
    """redis-check-rdb's verdict: (ok, keys it read, its last lines)."""
    result = subprocess.run(["redis-check-rdb", path], capture_output=True, text=True, check=False)
    text = result.stdout + result.stderr
    found = KEYS_READ.search(text)
    ok = result.returncode == 0 and "RDB looks OK" in text
    return ok, int(found.group(1)) if found else None, " | ".join(text.strip().splitlines()[-3:])


def scratch_keys(path, timeout=300):
    """Load the RDB at `path` into a throwaway redis-server (the redis user's, on a unix socket only, saving
    nothing) and count its keys; the server is shut down and its folder removed after."""
    folder = tempfile.mkdtemp(prefix="deploy-redis-verify-")
    server = None
    try:
        shutil.chown(folder, "redis", "redis")
        shutil.copyfile(path, os.path.join(folder, "dump.rdb"))
        shutil.chown(os.path.join(folder, "dump.rdb"), "redis", "redis")
        socket = os.path.join(folder, "redis.sock")
        argv = ["redis-server", "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"]
        argv += ["--dir", folder, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"]
        server = subprocess.Popen(
            argv, user="redis", group="redis", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        redis = Redis(None, socket)
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                output = server.stdout.read() if server.stdout else ""
                said = " | ".join(output.strip().splitlines()[-3:])
                raise RuntimeError(f"the scratch redis-server did not load it: {said}")
            with contextlib.suppress(RuntimeError, ValueError):
                if os.path.exists(socket) and redis.info("persistence").get("loading") == "0":
                    return redis.keys()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the scratch redis-server did not load it in {timeout}s")
            time.sleep(0.1)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def verify(folder, wanted):
    """Prove a stored backup restores: its sha256 as recorded, redis-check-rdb again, and a throwaway
    redis-server that loads it holds the keys the backup recorded. The record says so (or why not)."""
    record = find(folder, wanted)
    started = time.monotonic()
    problems = []
    if file_sha256(record["path"]) != record.get("rdb_sha256"):
        problems.append("the RDB changed since it was checked (its sha256 differs from the record)")
    ok, keys, said = check_rdb(record["path"])
    if not ok:
        problems.append(f"redis-check-rdb rejects it: {said}")
    elif keys != record.get("keys"):
        problems.append(f"redis-check-rdb read {keys} keys where the backup recorded {record.get('keys')}")
    try:
        loaded = scratch_keys(record["path"])
    except RuntimeError as exc:
        problems.append(str(exc))
        loaded = None
    if loaded is not None and loaded != record.get("keys"):
        expected = record.get("keys")
        problems.append(f"a scratch redis-server loaded {loaded} keys where the backup recorded {expected}")
    stored = read_json(os.path.join(folder, f"{record['stamp']}.json")) or {}
    stored.update(status="failed" if problems else "verified", verified_at=now_text())
    stored.update(verify_seconds=round(time.monotonic() - started, 2), loaded_keys=loaded)
    if problems:
        stored["reason"] = "; ".join(problems)
    else:
        stored.pop("reason", None)
    write_json(os.path.join(folder, f"{record['stamp']}.json"), stored)
    return {**record, **stored}


def records(folder):
    missing = "no record (the backup was interrupted while it was checked)"
    return backup_records(folder, ".rdb", missing, service="redis")


def take(folder, redis, label):
    """A BGSAVE, its RDB copied into the folder (renamed once complete and on disk), then checked."""
    for name in os.listdir(folder):
        if name.endswith(".partial"):
            os.unlink(os.path.join(folder, name))
    started = time.monotonic()
    source = snapshot(redis)
    stamp = new_backup_stamp(folder, ".rdb")
    final = os.path.join(folder, f"{stamp}.rdb")
    # Redis replaces its RDB by a rename: the file opened here stays the snapshot it was.
    with (
        open(source, "rb") as src,
        open(os.open(f"{final}.partial", os.O_WRONLY | os.O_CREAT, 0o600), "wb") as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(f"{final}.partial", final)
    ok, keys, said = check_rdb(final)
    record = {
        "stamp": stamp,
        "service": "redis",
        "label": label,
        "created_at": now_text(),
        "seconds": round(time.monotonic() - started, 2),
        "rdb_sha256": file_sha256(final),
        "size": os.path.getsize(final),
        "keys": keys,
        "keys_live": redis.keys(),
        "check": said,
        "status": "verified" if ok else "failed",
    }
    if not ok:
        record["reason"] = f"redis-check-rdb rejects it: {said}"
    write_json(os.path.join(folder, f"{stamp}.json"), record)
    return record


def prune(folder, keep_daily, keep_weekly):
    """Retention as for Postgres: the newest two, one a day, one a week; failed ones older than the
    newest verified one; safety backups after keep_daily days."""
    return prune_backups(folder, ".rdb", keep_daily, keep_weekly)


def find(folder, wanted):
    return find_backup(folder, ".rdb", wanted, "Redis backup")


def systemctl(*args):
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)}: {result.stderr.strip()}")


def wait_ready(redis, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if redis.info("persistence").get("loading") == "0":
                return
        except RuntimeError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back in time")
        time.sleep(0.2)


def set_appendonly(dropin, value):
    """Turn appendonly in deploy's drop-in (the file Redis includes) to `value`; its text before."""
    with open(dropin, encoding="utf-8") as fh:
        text = fh.read()
    changed = re.sub(r"(?m)^appendonly \w+$", f"appendonly {value}", text)
    tmp = f"{dropin}.restore"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(changed)
    shutil.copymode(dropin, tmp)
    os.chown(tmp, os.stat(dropin).st_uid, os.stat(dropin).st_gid)
    os.replace(tmp, dropin)
    return text


def put_back(redis, record, dropin):
    """Stop Redis, put the backup's RDB in its place, start it. With appendonly yes the AOF folder is
    moved aside (an AOF wins over the RDB at start): Redis starts from the RDB with appendonly no, then
    writes its AOF from memory (CONFIG SET appendonly yes) and the drop-in is as it was."""
    aof = redis.config("appendonly") == "yes"
    folder, dbfile = redis.config("dir"), redis.config("dbfilename")
    aof_dir = os.path.join(folder, redis.config("appenddirname")) if aof else None
    target = os.path.join(folder, dbfile)
    staged = f"{target}.deploy-restore"
    shutil.copyfile(record["path"], staged)
    shutil.chown(staged, "redis", "redis")
    os.chmod(staged, 0o660)
    text = None
    systemctl("stop", "redis-server")
    try:
        if aof_dir and os.path.isdir(aof_dir):
            os.replace(aof_dir, f"{aof_dir}.before-restore-{record['stamp']}")
        os.replace(staged, target)
        if aof:
            text = set_appendonly(dropin, "no")
        systemctl("start", "redis-server")
        wait_ready(redis)
        if aof:
            redis("config", "set", "appendonly", "yes")
            while True:
                info = redis.info("persistence")
                if (
                    info.get("aof_enabled") == "1"
                    and info.get("aof_rewrite_in_progress") == "0"
                    and (info.get("aof_rewrite_scheduled") == "0")
                ):
                    break
                time.sleep(0.2)
    finally:
        if text is not None:
            with open(dropin, "w", encoding="utf-8") as fh:
                fh.write(text)
        with contextlib.suppress(RuntimeError):
            systemctl("start", "redis-server")


def restore(args, redis):
    for number in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(number, signal.SIG_IGN)
    with folder_lock(args.dir):
        record = find(args.dir, args.backup)
        if record.get("status") != "verified":
            raise SystemExit(
                f"backup {record['stamp']} is {record.get('status')}: restore only a verified one"
            )
        if file_sha256(record["path"]) != record.get("rdb_sha256"):
            raise SystemExit(f"backup {record['stamp']}: the RDB changed since it was checked")
        result = {"backup": record["stamp"], "service": "redis"}
        safety = take(args.dir, redis, "safety")
        result["safety_backup"] = safety["stamp"]
        if safety["status"] != "verified":
            result.update(status="refused", reason=f"the safety backup failed: {safety.get('reason')}")
            print(json.dumps(result, sort_keys=True))
            return 4
        put_back(redis, record, args.dropin)
        found = redis.keys()
        result.update(keys=found, expected=record.get("keys"))
        result["status"] = "restored" if found == record.get("keys") else "mismatch"
    print(json.dumps(result, sort_keys=True))
    return 0 if result["status"] == "restored" else 5


def main(argv):
    parser = argparse.ArgumentParser(prog="redis_backup")
    parser.add_argument("action", choices=["backup", "verify", "list", "restore"])
    parser.add_argument("backup", nargs="?")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--app", default="")
    parser.add_argument("--dropin", default="")
    parser.add_argument("--label", default="manual")
    parser.add_argument("--keep-daily", type=int, default=7)
    parser.add_argument("--keep-weekly", type=int, default=4)
    args = parser.parse_args(argv)
    if args.action == "list":
        print(json.dumps(records(args.dir), sort_keys=True))
        return 0
    if args.action == "verify":
        with folder_lock(args.dir):
            record = verify(args.dir, args.backup)
        print(json.dumps(record, sort_keys=True))
        return 0 if record["status"] == "verified" else 3
    redis = Redis(args.app)
    if args.action == "restore":
        return restore(args, redis)
    with folder_lock(args.dir):
        record = take(args.dir, redis, args.label)
        if record["status"] == "verified":
            record["removed"] = prune(args.dir, args.keep_daily, args.keep_weekly)
    print(json.dumps(record, sort_keys=True))
    return 0 if record["status"] == "verified" else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
