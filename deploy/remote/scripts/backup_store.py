"""What pg_backup.py and redis_backup.py share: a folder of backups (DIR/<stamp>.<ext> and its record
DIR/<stamp>.json), its lock, its records and its retention.

A host program runs alone on the host (`python3 -I -c TEXT`, or the one file the timer runs): the text
that travels is the program with its import of this module replaced by this module's text
(`deploy.remote.scripts.host_program`). In the package, the programs import it as a module.
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import time

STAMP = re.compile(r"^\d{8}T\d{6}Z$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def parse_stamp(stamp):
    """The UTC time of a backup's stamp (20261206T224500Z)."""
    return datetime.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=datetime.UTC)


def now_text():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path, data):
    """Write a record (0600) through a temporary file, on disk before it takes the name."""
    tmp = f"{path}.partial"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def backup_records(folder, ext, missing, **extra):
    """Every backup (`<stamp><ext>`) of `folder`, oldest first: its record, or status 'unverified'
    (`missing` says why) for a backup without one; `extra` is added to each."""
    out: list[dict[str, object]] = []
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        stem, found = os.path.splitext(name)
        if found != ext or not STAMP.match(stem):
            continue
        path = os.path.join(folder, name)
        data = read_json(os.path.join(folder, stem + ".json")) or {"status": "unverified", "reason": missing}
        data.update(stamp=stem, path=path, size=os.path.getsize(path), **extra)
        out.append(data)
    return out


def is_base(record):
    """A verified backup that is not a safety backup (which holds the data as before a restore)."""
    return record.get("status") == "verified" and record.get("label") != "safety"


def find_backup(folder, ext, wanted, what="backup"):
    """The record `wanted` names (a stamp, or 'latest': the newest verified backup that is not a
    safety backup: restoring that one undoes a restore)."""
    all_records = backup_records(folder, ext, "")
    if wanted in (None, "", "latest"):
        verified = [r for r in all_records if is_base(r)]
        if not verified:
            raise SystemExit(f"no verified {what} in {folder}")
        return verified[-1]
    stem = os.path.splitext(os.path.basename(wanted))[0]
    for record in all_records:
        if record["stamp"] == stem:
            return record
    raise SystemExit(f"no {what} {wanted} in {folder}")


def kept(stamps, keep_daily, keep_weekly):
    """The stamps retention keeps: the two newest (a damaged newest one always has a fallback), the
    newest of each of the last `keep_daily` days that have one, and the newest of each of the last
    `keep_weekly` ISO weeks that have one."""
    ordered = sorted(stamps, reverse=True)
    keep = set(ordered[:2])
    days: list[datetime.date] = []
    weeks: list[tuple[int, int]] = []
    for stamp in ordered:
        when = parse_stamp(stamp)
        day, week = when.date(), when.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep.add(stamp)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.append(week)
            keep.add(stamp)
    return keep


def to_remove(found, keep_daily, keep_weekly):
    """The stamps to delete: verified backups retention does not keep, failed or unverified ones
    older than the newest verified backup (newer failures stay, so they are seen), and safety backups
    (taken before a restore) more than keep_daily days (at least one) older than the newest backup."""
    verified = [r["stamp"] for r in found if is_base(r)]
    if not verified:
        return []
    keep = kept(verified, keep_daily, keep_weekly)
    newest = max(verified)
    days = datetime.timedelta(days=max(1, keep_daily))
    out = []
    for record in found:
        stamp = record["stamp"]
        if record.get("label") == "safety":
            # Taken before a restore: kept for keep_daily days (at least one).
            if parse_stamp(stamp) < parse_stamp(newest) - days:
                out.append(stamp)
        elif record.get("status") == "verified":
            if stamp not in keep:
                out.append(stamp)
        elif stamp < newest:
            out.append(stamp)
    return sorted(out)


def prune_backups(folder, ext, keep_daily, keep_weekly):
    """Remove what retention does not keep (each backup with its record); the stamps removed."""
    removed = to_remove(backup_records(folder, ext, ""), keep_daily, keep_weekly)
    for stamp in removed:
        for suffix in (ext, ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, stamp + suffix))
    return removed


def make_folder(folder):
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chown(folder, 0, 0)
    os.chmod(folder, 0o700)


@contextlib.contextmanager
def folder_lock(folder):
    """One backup or restore of this app and service at a time on this host."""
    make_folder(folder)
    with open(os.path.join(folder, ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def new_backup_stamp(folder, ext):
    """A stamp for a new backup: now, or the next second that no backup of the folder has."""
    while True:
        stamp = datetime.datetime.now(datetime.UTC).strftime(STAMP_FORMAT)
        if not os.path.exists(os.path.join(folder, f"{stamp}{ext}")):
            return stamp
        time.sleep(1)
