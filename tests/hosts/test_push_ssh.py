"""How deploy reaches hosts over SSH, on two real sandbox hosts: unknown and changed host keys,
--accept-new-host-keys, another port, a non-root user with passwordless sudo, and ProxyJump through
a bastion (sandbox-1) to a host this machine cannot reach directly (sandbox-2).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, make_project, private_sandbox, version

pytestmark = pytest.mark.hosts

USER = "deployer"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "ssh-sandbox", 2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("ssh-project"), box.hosts())


def public_key(host: SandboxHost) -> str:
    """'ssh-ed25519 AAAA...' of the host, from the sandbox's known_hosts ('name,address type key')."""
    for line in Path(host.known_hosts).read_text().splitlines():
        names, key_type, key = line.split()[:3]
        if host.address in names.split(","):
            return f"{key_type} {key}"
    raise AssertionError(f"{host.address} is not in {host.known_hosts}")


def known_line(host: SandboxHost) -> str:
    return f"{host.address} {public_key(host)}"


def fingerprint(key: str) -> str:
    result = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=key, capture_output=True, text=True, check=True
    )
    return result.stdout.split()[1]


def configure(project: Project, known_hosts: Path, hosts: str | None = None, ssh: str = "") -> None:
    project.write_config(ssh=ssh)
    path = project.path / "deploy.yaml"
    text = path.read_text().replace(
        f"known_hosts: {project.hosts[0].known_hosts}", f"known_hosts: {known_hosts}"
    )
    if hosts is not None:
        text = text.replace(
            "  hosts: [" + ", ".join(h.address for h in project.hosts) + "]", f"  hosts: {hosts}"
        )
    path.write_text(text)
    project.commit("ssh settings")


def test_unknown_host_key_stops_and_accept_new_records_it_on_another_port(
    box: Sandbox, project: Project, tmp_path: Path
) -> None:
    first, second = project.hosts
    # sandbox-2's sshd also listens on 2222: its known_hosts name there is [address]:2222.
    box.run(
        second, ["sh", "-c", "printf 'Port 22\\nPort 2222\\n' > /etc/ssh/sshd_config.d/port.conf"], check=True
    )
    box.run(second, ["systemctl", "restart", "ssh"], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(known_line(first) + "\n" + known_line(second) + "\n")
    hosts = f"[{first.address}, {{address: {second.address}, port: 2222}}]"
    configure(project, known, hosts)
    before = known.read_text()
    refused = project.deploy("setup")
    assert refused.returncode == 1
    name = f"[{second.address}]:2222"
    assert (
        f"{name}: its host key (ssh-ed25519 {fingerprint(public_key(second))}) is not in {known}"
        in refused.stderr
    )
    assert "--accept-new-host-keys" in refused.stderr and "Traceback" not in refused.stderr
    assert known.read_text() == before
    accepted = project.deploy("setup", "--accept-new-host-keys", check=True)
    assert f"{second.address}:2222: changed" in accepted.stdout
    assert known.read_text() == before + f"{name} {public_key(second)}\n"
    # Now known: no flag needed.
    project.deploy("push", check=True)
    assert version(first.address) == version(second.address) == "v1"


def test_changed_host_key_is_refused_even_with_accept_new(project: Project, tmp_path: Path) -> None:
    first, second = project.hosts
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"{first.address} {wrong}\n" + known_line(second) + "\n")
    configure(project, known)
    before = known.read_text()
    for flags in ((), ("--accept-new-host-keys",)):
        result = project.deploy("status", *flags)
        assert result.returncode == 1
        assert f"{first.address}: HOST KEY CHANGED" in result.stderr
        assert f"offered ssh-ed25519 {fingerprint(public_key(first))}" in result.stderr
        assert f"expects {fingerprint(wrong)}" in result.stderr
        assert "ssh-keygen -R" in result.stderr and "Traceback" not in result.stderr
        assert known.read_text() == before


def add_sudo_user(box: Sandbox, host: SandboxHost, password_needed: bool = False) -> None:
    key = Path(host.key).with_suffix(".pub").read_text()
    rule = f"{USER} ALL=(ALL) ALL" if password_needed else f"{USER} ALL=(ALL) NOPASSWD: ALL"
    script = (
        f"id {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}; "
        f"install -d -m 700 -o {USER} -g {USER} /home/{USER}/.ssh; "
        f'printf "%s" "$1" > /home/{USER}/.ssh/authorized_keys; '
        f"chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys; "
        f"chmod 600 /home/{USER}/.ssh/authorized_keys; "
        f'printf "%s\\n" "$2" > /etc/sudoers.d/{USER}; chmod 440 /etc/sudoers.d/{USER}'
    )
    box.run(host, ["sh", "-c", script, "add", key, rule], check=True)


def test_non_root_user_with_passwordless_sudo(box: Sandbox, project: Project) -> None:
    for host in project.hosts:
        add_sudo_user(box, host)
    configure(project, Path(project.hosts[0].known_hosts), ssh=f"user: {USER}")
    project.set_version("v2-sudo")
    project.deploy("setup", check=True)
    result = project.deploy("push", check=True)
    assert "is live on" in result.stdout
    assert [version(h.address) for h in project.hosts] == ["v2-sudo", "v2-sudo"]
    for host in project.hosts:
        journal = box.run(host, ["journalctl", "--no-pager", "_COMM=sudo"], check=True).stdout
        assert f"{USER} : PWD=" in journal and "USER=root" in journal
        logins = box.run(host, ["journalctl", "--no-pager", "-u", "ssh"], check=True).stdout
        assert f"Accepted publickey for {USER}" in logins


def test_a_user_whose_sudo_asks_for_a_password_gets_a_clear_error(box: Sandbox, project: Project) -> None:
    host = project.hosts[0]
    add_sudo_user(box, host, password_needed=True)
    try:
        result = project.deploy("status")
        assert result.returncode == 1
        assert f"{host.address}: {USER} needs passwordless sudo" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        add_sudo_user(box, host)


@pytest.fixture
def bastion_only(box: Sandbox, project: Project) -> Iterator[tuple[SandboxHost, SandboxHost]]:
    """sandbox-2 reachable only through sandbox-1: a private link between their namespaces, and no
    route from this machine to sandbox-2."""
    bastion, target = project.hosts
    tag = f"dj{os.getpid() % 100000}"
    ip = ["ip"]
    subprocess.run(
        [*ip, "link", "add", f"{tag}a", "netns", bastion.netns, "type", "veth",
         "peer", "name", f"{tag}b", "netns", target.netns],
        check=True,
    )  # fmt: skip
    steps = [
        ["-n", bastion.netns, "addr", "add", "169.254.87.1/30", "dev", f"{tag}a"],
        ["-n", target.netns, "addr", "add", "169.254.87.2/30", "dev", f"{tag}b"],
        ["-n", bastion.netns, "link", "set", f"{tag}a", "up"],
        ["-n", target.netns, "link", "set", f"{tag}b", "up"],
        ["-n", bastion.netns, "route", "add", f"{target.address}/32", "via", "169.254.87.2"],
        # This machine loses its route to sandbox-2 (the link stays up: no packet may leave any
        # other way): connecting fails at once with "No route to host".
        ["route", "add", "unreachable", f"{target.address}/32"],
    ]
    try:
        for step in steps:
            subprocess.run([*ip, *step], check=True)
        yield bastion, target
    finally:
        subprocess.run([*ip, "route", "delete", "unreachable", f"{target.address}/32"], check=False)
        subprocess.run([*ip, "-n", bastion.netns, "link", "delete", f"{tag}a"], check=False)


def test_proxy_jump_through_a_bastion(
    box: Sandbox, project: Project, bastion_only: tuple[SandboxHost, SandboxHost]
) -> None:
    bastion, target = bastion_only
    known = Path(bastion.known_hosts)
    configure(project, known, hosts=f"[{target.address}]")
    direct = project.deploy("status")
    assert direct.returncode == 1 and f"{target.address}: cannot connect to port 22" in direct.stderr
    assert "Traceback" not in direct.stderr
    configure(project, known, hosts=f"[{target.address}]", ssh=f"proxy_jump: root@{bastion.address}")
    project.set_version("v3-jump")
    result = project.deploy("push", check=True)
    assert f"is live on {target.address}" in result.stdout
    # Only the bastion can reach sandbox-2 now: ask it.
    answer = box.run(
        bastion,
        ["curl", "-sS", "-H", "Host: flaskr.test", f"http://{target.address}/health"],
        check=True,
    ).stdout
    assert '"version":"v3-jump"' in answer.replace(" ", "")
    logins = box.run(bastion, ["journalctl", "--no-pager", "-u", "ssh"], check=True).stdout
    assert "Accepted publickey for root" in logins
    status = project.deploy("status", check=True)
    assert "healthy" in status.stdout


def test_a_large_upload_arrives_whole(box: Sandbox, project: Project) -> None:
    """100 MB (a model's wheels) on its own channel: every byte arrives, checked on the host. The
    speed (paramiko's sendall alone copied the rest after every packet: 1.3 MB/s) is in findings.md."""
    import hashlib

    from deploy.config.loader import load
    from deploy.plan import Step, Upload
    from deploy.remote.executor import SSHExecutor

    project.write_config()
    config = load(project.path / "deploy.yaml")
    data = os.urandom(100 * 1024 * 1024)
    host = project.hosts[0]
    executor = SSHExecutor(config, config.server.hosts[:1])
    try:
        name = next(iter(executor.hosts))
        step = Step("upload", name, (Upload("/root/large-upload", data, 0o600, "root", "root"),))
        result = executor.run_step(name, step)
        # Root never writes in a folder others can change (/var/tmp: 1777); the refusal is an
        # ordinary failed step with the host's reason, even while the upload is still being sent.
        step = Step("upload", name, (Upload("/var/tmp/large-upload", data, 0o600, "root", "root"),))
        refused = executor.run_step(name, step)
    finally:
        executor.close()
    assert result.ok, result.output
    on_host = box.run(host, ["sha256sum", "/root/large-upload"], check=True).stdout.split()[0]
    assert on_host == hashlib.sha256(data).hexdigest()
    box.run(host, ["rm", "-f", "/root/large-upload"], check=True)
    assert not refused.ok and refused.exit_code == 73
    assert "deploy: refused: /var/tmp is a folder a user other than root can change" in refused.output
