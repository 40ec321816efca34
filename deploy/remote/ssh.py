"""SSH connection set-up: host keys (known_hosts, accept-new), the jump host, the key file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import paramiko

from deploy.config.model import Config
from deploy.remote.protocol import ConnectError

# --- host keys -------------------------------------------------------------------------------------


def known_hosts_file(config: Config) -> Path:
    return Path(os.path.expanduser(config.server.ssh.known_hosts or "~/.ssh/known_hosts"))


def _policies(known_hosts: Path, accept_new: bool) -> paramiko.MissingHostKeyPolicy:
    class Reject(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            raise ConnectError(
                f"{hostname}: its host key ({key.get_name()} {key.fingerprint}) is not in {known_hosts}. "
                "Check the key with the host's administrator, then add it to that file "
                "(or pass --accept-new-host-keys to trust a host seen for the first time)"
            )

    class AcceptNew(paramiko.MissingHostKeyPolicy):
        lock = threading.Lock()

        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            with self.lock:
                known_hosts.parent.mkdir(parents=True, exist_ok=True)
                with known_hosts.open("a", encoding="utf-8") as handle:
                    handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            client.get_host_keys().add(hostname, key.get_name(), key)

    return AcceptNew() if accept_new else Reject()


# --- SSH -----------------------------------------------------------------------------------------


def parse_jump(text: str) -> tuple[str, str, int]:
    """`[user@]host[:port]` (an IPv6 address in brackets) -> (user or "", address, port)."""
    user, _, rest = text.strip().rpartition("@")
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":")
    else:
        address, _, port = rest.partition(":")
    if not address or (port and not port.isdigit()) or not 0 < int(port or 22) < 65536:
        raise ConnectError(
            f"server.ssh.proxy_jump {text!r}: expected [user@]host[:port], e.g. deploy@bastion.example.com:22"
        )
    return user, address, int(port or 22)
