"""`deploy services pull`: a root-only backup file of a service host copied here through SFTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.cli.common import fail
from deploy.plan import Command

if TYPE_CHECKING:
    from deploy.remote.executor import SSHExecutor


def download(executor: SSHExecutor, host: str, path: str, target: Path) -> None:
    """Copy the root-only dump through SFTP (a login user other than root gets a copy made for it)."""
    connection = executor.connection(host)
    user = executor.hosts[host].user or executor.config.server.ssh.user
    if user == "root" and not executor.sudo:
        connection.get(path, str(target))
        os.chmod(target, 0o600)
        return
    copy = f"/tmp/deploy-pull-{os.getpid()}.dump"  # noqa: S108 (made 0600, the login user's, then removed)
    code, out = executor.run(
        host, Command(("install", "-m", "0600", "-o", user, path, copy), "copy", sudo=True)
    )
    if code != 0:
        fail(f"{host}: cannot copy {path}: {out.strip()[-300:]}", 1)
    try:
        connection.get(copy, str(target))
        os.chmod(target, 0o600)
    finally:
        executor.run(host, Command(("rm", "-f", "--", copy), "remove the copy", sudo=True))
