"""SSH options that need no host: ProxyJump parsing, sudo wrapping, host-key policies."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from deploy.config.loader import load_text
from deploy.remote.executor import ConnectError, SSHExecutor, parse_jump
from deploy.remote.ssh import _policies

pytestmark = pytest.mark.unit

YAML = """\
app: {{name: shop, wsgi: "shop:app"}}
server:
  domains: [shop.example.com]
  hosts: [web1]
  tls: false
  ssh: {ssh}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("root@10.0.0.1", ("root", "10.0.0.1", 22)),
        ("ops@bastion.example.com:2222", ("ops", "bastion.example.com", 2222)),
        ("bastion", ("", "bastion", 22)),
        ("me@[2001:db8::1]:2200", ("me", "2001:db8::1", 2200)),
    ],
)
def test_proxy_jump_forms(text: str, expected: tuple[str, str, int]) -> None:
    assert parse_jump(text) == expected


@pytest.mark.parametrize("text", ["me@host:ssh", "me@:22", "host:70000"])
def test_bad_proxy_jump_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConnectError, match=r"server.ssh.proxy_jump .*expected \[user@\]host\[:port\]"):
        parse_jump(text)


def test_a_non_root_user_runs_privileged_commands_through_sudo_n() -> None:
    root = SSHExecutor(load_text(YAML.format(ssh="{}")), [])
    user = SSHExecutor(load_text(YAML.format(ssh="{user: deployer}")), [])
    assert root._wrap(("systemctl", "restart", "x"), True) == "systemctl restart x"
    assert user._wrap(("systemctl", "restart", "x"), True) == "sudo -n -- systemctl restart x"
    assert user._wrap(("cat", "/etc/hostname"), False) == "cat /etc/hostname"


def test_unknown_key_is_refused_or_recorded_only_with_accept_new(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = paramiko.Ed25519Key.from_private_key_file(str(_keyfile(tmp_path)))
    client = paramiko.SSHClient()
    with pytest.raises(
        ConnectError, match=rf"10.0.0.9: its host key \(ssh-ed25519 SHA256:.*\) is not in {known}"
    ):
        _policies(known, False).missing_host_key(client, "10.0.0.9", key)
    assert not known.exists()
    _policies(known, True).missing_host_key(client, "[10.0.0.9]:2222", key)
    assert known.read_text() == f"[10.0.0.9]:2222 ssh-ed25519 {key.get_base64()}\n"


def _keyfile(tmp_path: Path) -> Path:
    import subprocess

    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_an_executor_without_a_step_guard_never_takes_the_deploy_lock() -> None:
    """Safe by default: holding the lock without the guard would let steps outlive it."""
    from deploy.plan import Command

    executor = SSHExecutor(load_text(YAML.format(ssh="{}")), [])
    with pytest.raises(RuntimeError, match="step guard"):
        executor.acquire_lock("web1", Command(("true",), "lock"))


def test_the_push_s_step_guard_wraps_commands_in_the_lock_s_guard() -> None:
    from deploy.layout import layout_for
    from deploy.push.lock import step_guard
    from deploy.remote.commands import LOST_LOCK, guarded

    config = load_text(YAML.format(ssh="{}"))
    guard = step_guard(config)
    assert guard.lost_code == LOST_LOCK
    argv = ("systemctl", "restart", "app@blue.service")
    assert guard(4242, "switch", argv) == guarded(layout_for(config), 4242, "switch", argv)
