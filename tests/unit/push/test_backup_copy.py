"""Backups copied to another host: the arguments the timer's program gets, the two ends setup prepares
(only what differs), the forced command, and the receiver that writes only what arrives whole."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from deploy.config.loader import load_text
from deploy.plan import Command, Upload
from deploy.push import backup_copy, backups
from deploy.remote.executor import Recorder
from deploy.remote.scripts import host_program
from tests.unit.push.test_backups import YAML

pytestmark = pytest.mark.unit

KEY = paramiko.ECDSAKey.generate()


def config(tmp_path: Path, known: bool = True) -> object:
    known_hosts = tmp_path / "known_hosts"
    if known:
        known_hosts.write_text(f"10.0.0.1 {KEY.get_name()} {KEY.get_base64()}\n", encoding="utf-8")
    text = YAML.replace("copy_to: /mnt/offsite", "copy_to: 10.0.0.1").replace(
        "  tls: false\n", f"  tls: false\n  ssh: {{known_hosts: {known_hosts}}}\n"
    )
    return load_text(text)


def test_the_timer_sends_each_backup_to_the_other_host_and_may_reach_the_network(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    args = backups.backup_args(cfg, "scheduled")  # type: ignore[arg-type]
    assert "--copy-to" not in args
    at = args.index("--copy-host")
    assert args[at : at + 10] == (
        "--copy-host", "10.0.0.1", "--copy-port", "22", "--copy-user", "shop-app-backups",
        "--copy-key", "/etc/deploy/shop-app/services/backup-copy/id_ed25519", "--copy-known-hosts",
        "/etc/deploy/shop-app/services/backup-copy/known_hosts",
    )  # fmt: skip
    unit = backups.service_unit(cfg)  # type: ignore[arg-type]
    assert "PrivateNetwork=no" in unit and "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in unit
    assert 'ReadWritePaths="/var/backups/deploy/shop-app/postgres"\n' in unit
    folder = backups.service_unit(load_text(YAML))
    assert "PrivateNetwork=yes" in folder and "RestrictAddressFamilies=AF_UNIX\n" in folder


def test_setup_makes_the_key_on_the_service_host_then_authorizes_it_for_the_forced_command_only(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE deploy shop-app backups from 10.0.0.2"
    executor = Recorder({"10.0.0.2": "--kh--\n", "10.0.0.1": "folder \nprogram \n--ak--\n"})
    ran: list[str] = []
    steps = backup_copy.prepare(cfg, executor, lambda s: ran.extend(x.name for x in s), apply=False)  # type: ignore[arg-type]
    # A dry run before the key exists: only the source's step is known.
    (source,) = steps
    assert source.host == "10.0.0.2" and not ran
    keygen = [a for a in source.actions if isinstance(a, Command) and "ssh-keygen" in a.argv[2]]
    assert keygen and keygen[0].sudo
    (pinned,) = [a for a in source.actions if isinstance(a, Upload)]
    assert pinned.mode == 0o600 and f"10.0.0.1 {KEY.get_name()} {KEY.get_base64()}" in pinned.content.decode()
    # Once the key exists: the target's account, folder, program and the one authorized line.
    executor.facts["10.0.0.2"] = f"{pub}\n--kh--\n{pinned.content.decode()}"
    steps = backup_copy.prepare(cfg, executor, lambda s: ran.extend(x.name for x in s), apply=True)  # type: ignore[arg-type]
    (target,) = steps
    assert ran == ["backup copy target"] and target.host == "10.0.0.1"
    lines = [a.line() if isinstance(a, Command) else f"write {a.remote_path}" for a in target.actions]
    assert any("useradd --system" in line and "shop-app-backups" in line for line in lines)
    (authorized,) = [a for a in target.actions if isinstance(a, Upload) and "authorized" in a.remote_path]
    assert (authorized.owner, authorized.mode) == ("root", 0o644)
    line = authorized.content.decode()
    assert line.startswith(
        'restrict,command="/usr/bin/python3 -I /usr/local/lib/deploy/shop-app/pg_backup.py receive --dir '
        '/var/backups/deploy/shop-app/postgres-copies --keep-daily 3 --keep-weekly 2" ssh-ed25519 AAAAC3Nz'
    )
    # All in place: nothing to do.
    program = hashlib.sha256(backups.PG_BACKUP.encode()).hexdigest()
    executor.facts["10.0.0.1"] = f"user yes\nfolder shop-app-backups:700\nprogram {program}\n--ak--\n{line}"
    assert backup_copy.prepare(cfg, executor, lambda s: None, apply=True) == []  # type: ignore[arg-type]


def test_an_unknown_target_host_key_is_refused_never_trusted(tmp_path: Path) -> None:
    cfg = config(tmp_path, known=False)
    executor = Recorder({"10.0.0.2": "--kh--\n"})
    with pytest.raises(backup_copy.CopyError, match="host key is not in"):
        backup_copy.prepare(cfg, executor, lambda s: None, apply=False)  # type: ignore[arg-type]


def receive(folder: Path, command: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, SSH_ORIGINAL_COMMAND=command)
    argv = [sys.executable, "-I", "-c", host_program("pg_backup.py"), "receive", "--dir", str(folder)]
    return subprocess.run(argv, input=data, env=env, capture_output=True, check=False)


def test_the_receiver_writes_only_what_arrives_whole_and_never_reads(tmp_path: Path) -> None:
    data = b"PGDMP" + os.urandom(5000)
    digest = hashlib.sha256(data).hexdigest()
    done = receive(tmp_path, f"put 20261207T030000Z.dump {len(data)} {digest}", data)
    assert done.stdout.decode().strip() == f"ok {digest}"
    assert (tmp_path / "20261207T030000Z.dump").read_bytes() == data
    assert oct((tmp_path / "20261207T030000Z.dump").stat().st_mode & 0o777) == "0o600"
    # Cut short or changed on the way: nothing stays.
    short = receive(tmp_path, f"put 20261208T030000Z.dump {len(data)} {digest}", data[:100])
    assert short.returncode == 3 and b"arrived damaged" in short.stdout
    wrong = receive(tmp_path, f"put 20261208T030000Z.dump {len(data)} {'0' * 64}", data)
    assert wrong.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261207T030000Z.dump"]
    # Anything but a put of a backup's name: refused, and nothing is printed from a file.
    for command in ("cat 20261207T030000Z.dump", "put ../x.dump 1 a", "put 20261207T030000Z.dump", ""):
        refused = receive(tmp_path, command, b"x")
        assert refused.returncode == 4 and b"PGDMP" not in refused.stdout
    record = json.dumps({"stamp": "20261207T030000Z", "status": "verified"}).encode()
    rdigest = hashlib.sha256(record).hexdigest()
    assert receive(tmp_path, f"put 20261207T030000Z.json {len(record)} {rdigest}", record).returncode == 0
