"""deploy sandbox: real hosts boot, answer SSH with verified host keys, run systemd, Nginx, venvs; then go."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.sandbox.machines import Sandbox, SandboxError, SandboxHost
from deploy.sandbox.processes import CGROUP_PREFIX, cgroup_roots, remove_cgroups
from tests.conftest import require_tools

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yaml"))


def deploy_cli(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def traces(state_dir: Path) -> list[str]:
    """What of a sandbox exists on this machine, found without the sandbox module's own scans."""
    box = Sandbox(state_dir)  # only for its tag and paths
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    found += [
        f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"deploy-{box.tag}-")
    ]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    found += [f"link {m}" for m in re.findall(rf"^\d+: (dsb{box.tag}-\d+)", links, re.M)]
    mounts = Path("/proc/mounts").read_text()
    found += [
        f"mount {line}"
        for line in mounts.splitlines()
        if str(state_dir) in line or f"/deploy-{box.tag}-" in line
    ]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state_dir) in cmdline:
                found.append(f"process {proc.name}: {cmdline}")
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if (hierarchy / f"deploy-sandbox-{box.tag}").exists():
            found.append(f"cgroup {hierarchy / f'deploy-sandbox-{box.tag}'}")
    if (state_dir / "machines").exists():
        found.append(f"directory {state_dir / 'machines'}")
    if shutil.which("iptables"):
        rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True)
        found += [f"rule {line}" for line in rules.stdout.splitlines() if f"dsb{box.tag}-" in line]
    return found


def reaches(sandbox: Sandbox, source: SandboxHost, address: str, port: int = 80) -> bool:
    """Whether `source` opens a TCP connection to address:port (bash's /dev/tcp, 3 s at most)."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    return sandbox.run(source, ["timeout", "3", "bash", "-c", probe]).returncode == 0


# --- What a host is -------------------------------------------------------------------------------


@pytest.mark.hosts
def test_hosts_run_systemd_as_pid_1_and_finish_booting(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost]
) -> None:
    assert len(sandbox_hosts) >= 1
    for host in sandbox_hosts:
        result = sandbox.run(host, ["sh", "-c", "cat /proc/1/comm; hostname; systemctl is-system-running"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["systemd", host.name, "running"]


@pytest.mark.hosts
def test_hosts_have_their_own_identity(sandbox: Sandbox, sandbox_hosts: list[SandboxHost]) -> None:
    seen = {
        host.name: sandbox.run(
            host, ["cat", "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True
        ).stdout
        for host in sandbox_hosts
    }
    assert len(set(seen.values())) == len(sandbox_hosts)
    assert len({h.address for h in sandbox_hosts}) == len(sandbox_hosts)


@pytest.mark.hosts
def test_nginx_answers_on_port_80_from_this_machine(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost]
) -> None:
    # The shared hosts may already serve an app (host tests share them, in any order): then a request
    # by address reaches deploy's catch-all server, which closes the connection without an answer
    # (`return 444`); a fresh host answers with Debian's default page.
    catch_all = "/etc/nginx/conf.d/deploy-catch-all.conf"
    for host in sandbox_hosts:
        if sandbox.run(host, ["test", "-e", catch_all]).returncode == 0:
            with pytest.raises(http.client.RemoteDisconnected):
                urllib.request.urlopen(f"http://{host.address}/", timeout=10)
            continue
        with urllib.request.urlopen(f"http://{host.address}/", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Server"].startswith("nginx/")


@pytest.mark.hosts
def test_python_creates_a_venv_with_pip(sandbox: Sandbox, sandbox_hosts: list[SandboxHost]) -> None:
    host = sandbox_hosts[0]
    script = "python3 -m venv /tmp/venv-test && /tmp/venv-test/bin/python -m pip --version"
    result = sandbox.run(host, ["sh", "-c", script], timeout=120)
    sandbox.run(host, ["rm", "-rf", "/tmp/venv-test"])
    assert result.returncode == 0, result.stderr
    assert "/tmp/venv-test/lib/python3.11/site-packages/pip" in result.stdout


@pytest.mark.hosts
def test_hosts_have_the_tools_deploy_relies_on(sandbox: Sandbox, sandbox_hosts: list[SandboxHost]) -> None:
    tools = ["rsync", "sudo", "certbot", "curl", "nginx", "sshd", "ip", "python3"]
    result = sandbox.run(
        sandbox_hosts[-1],
        ["sh", "-c", 'for t in "$@"; do command -v "$t" || echo "NO $t"; done', "sh", *tools],
    )
    assert "NO " not in result.stdout, result.stdout
    assert sandbox.run(sandbox_hosts[-1], ["certbot", "--version"]).returncode == 0


@pytest.mark.hosts
def test_hosts_have_no_route_beyond_this_machine(sandbox: Sandbox, sandbox_hosts: list[SandboxHost]) -> None:
    host = sandbox_hosts[0]
    routes = sandbox.run(host, ["ip", "-4", "route", "show"], check=True).stdout
    assert "default" not in routes
    # `ip route get` asks the kernel's routing table; no packet is sent.
    outside = sandbox.run(host, ["ip", "route", "get", "203.0.113.1"])
    assert outside.returncode != 0
    assert "unreachable" in outside.stderr
    assert sandbox.run(host, ["ip", "route", "get", host.gateway]).returncode == 0


@pytest.mark.hosts
def test_stopping_a_unit_on_one_host_leaves_the_others_alone(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost]
) -> None:
    if len(sandbox_hosts) < 2:
        pytest.skip("needs two hosts")
    first, second = sandbox_hosts[:2]
    sandbox.run(first, ["systemctl", "stop", "nginx"], check=True)
    try:
        assert sandbox.run(first, ["systemctl", "is-active", "nginx"]).stdout.strip() == "inactive"
        assert sandbox.run(second, ["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
        with urllib.request.urlopen(f"http://{second.address}/", timeout=10) as response:
            assert response.status == 200
    finally:
        sandbox.run(first, ["systemctl", "start", "nginx"], check=True)


@pytest.mark.hosts
def test_hosts_reach_each_other_as_on_one_private_network(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost]
) -> None:
    # A service on one host (Postgres, Redis) must be reachable from the app's other hosts.
    if len(sandbox_hosts) < 2:
        pytest.skip("needs two hosts")
    first, second = sandbox_hosts[:2]
    assert reaches(sandbox, second, first.address, 22)
    assert reaches(sandbox, first, second.address, 80)
    assert not reaches(sandbox, second, first.address, 5999)  # nothing listens there: a real answer


# --- SSH with host-key verification ------------------------------------------------------------------


@pytest.mark.hosts
def test_known_hosts_holds_the_keys_the_hosts_present(
    sandbox: Sandbox, sandbox_hosts: list[SandboxHost]
) -> None:
    lines = Path(sandbox_hosts[0].known_hosts).read_text().splitlines()
    for host in sandbox_hosts:
        served = sandbox.run(host, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True).stdout.split()[
            :2
        ]
        assert f"{host.name},{host.address} {' '.join(served)}" in lines


@pytest.mark.hosts
def test_ssh_refuses_a_host_whose_key_is_not_the_known_one(
    sandbox_hosts: list[SandboxHost], tmp_path: Path
) -> None:
    host = sandbox_hosts[0]
    other = sandbox_hosts[-1] if len(sandbox_hosts) > 1 else None
    ok = subprocess.run(host.ssh_argv(["true"]), capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr

    # The same host, but known_hosts says it has another key.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host.address} {' '.join((tmp_path / 'k.pub').read_text().split()[:2])}\n")
    argv = [a.replace(host.known_hosts, str(wrong)) for a in host.ssh_argv(["true"])]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr

    # An unknown host is refused too: no trust on first use.
    empty = tmp_path / "empty_known_hosts"
    empty.write_text(
        "" if other is None else Path(other.known_hosts).read_text().replace(host.address, "192.0.2.254")
    )
    argv = [a.replace(host.known_hosts, str(empty)) for a in host.ssh_argv(["true"])]
    unknown = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert unknown.returncode == 255
    assert "Host key verification failed" in unknown.stderr


# --- The environment and the CLI ----------------------------------------------------------------------


@pytest.mark.hosts
@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.stem for p in PLAYBOOKS])
def test_environment_sandbox_points_every_playbook_at_the_hosts(
    sandbox_hosts: list[SandboxHost], playbook: Path
) -> None:
    assert os.environ["DEPLOY_SANDBOX_DIR"] == str(Path(sandbox_hosts[0].environment_file).parent)
    config = load(playbook, environment="sandbox")
    assert [h.address for h in config.server.hosts] == [h.address for h in sandbox_hosts]
    assert all(h.user is None and h.port is None for h in config.server.hosts)
    ssh = config.server.ssh
    assert (ssh.user, ssh.port, ssh.proxy_jump) == ("root", 22, None)
    assert ssh.key == sandbox_hosts[0].key and Path(ssh.key).is_file()
    assert ssh.known_hosts == sandbox_hosts[0].known_hosts


@pytest.mark.hosts
def test_cli_list_shows_names_and_addresses(sandbox_hosts: list[SandboxHost]) -> None:
    result = deploy_cli("sandbox", "list")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [[h.name, h.address, "running"] for h in sandbox_hosts]


@pytest.mark.hosts
def test_cli_ssh_runs_one_command_with_its_words_intact(sandbox_hosts: list[SandboxHost]) -> None:
    words = ["a  b", "$HOME", "; echo injected", "it's", '"q"']
    result = deploy_cli("sandbox", "ssh", sandbox_hosts[0].name, "--", "printf", "%s\\n", *words)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == words
    failed = deploy_cli("sandbox", "ssh", sandbox_hosts[0].name, "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7


@pytest.mark.hosts
def test_cli_ssh_names_the_known_hosts_when_the_name_is_wrong(sandbox_hosts: list[SandboxHost]) -> None:
    result = deploy_cli("sandbox", "ssh", "no-such-host", "--", "true")
    assert result.returncode == 2
    assert "no sandbox host 'no-such-host'" in result.stderr
    assert sandbox_hosts[0].name in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.hosts
def test_cli_up_refuses_while_the_sandbox_is_up(sandbox_hosts: list[SandboxHost]) -> None:
    result = deploy_cli("sandbox", "up")
    assert result.returncode == 2
    assert "already up" in result.stderr and "deploy sandbox down" in result.stderr


# --- down leaves nothing behind -----------------------------------------------------------------------


@pytest.mark.hosts
def test_down_leaves_nothing_behind(sandbox: Sandbox, tmp_path: Path) -> None:
    # `sandbox` is up, so the root filesystem is cached and this is a second `up` beside another sandbox.
    state = tmp_path / "box"
    messages: list[str] = []
    box = Sandbox(state, progress=messages.append)
    try:
        (host,) = box.up(1)
        assert any(m.startswith("root filesystem: cached") for m in messages), messages
        assert box.run(host, ["true"]).returncode == 0
        before = traces(state)
        assert any(t.startswith("netns") for t in before)
        assert any(t.startswith("link") for t in before)
        assert any(t.startswith("mount") for t in before) or host.mode == "copy"
        assert any(t.startswith("process") for t in before)
        assert any(t.startswith("cgroup") for t in before)
        assert any(t.startswith("rule") for t in before) or not shutil.which("iptables")
        # Hosts of two sandboxes are two private networks: neither reaches the other.
        other = sandbox.hosts()[0]
        assert reaches(sandbox, other, other.address, 22)
        assert not reaches(box, host, other.address, 22)
        assert not reaches(sandbox, other, host.address, 22)
    finally:
        box.down()
    assert traces(state) == []
    assert box.leftovers() == []
    assert not state.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{host.address}/", timeout=2)


@pytest.mark.hosts
def test_hosts_can_boot_from_a_copy_instead_of_an_overlay(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "copy"
    box = Sandbox(state, copy=True)
    try:
        (host,) = box.up(1)
        assert host.mode == "copy"
        assert not [t for t in traces(state) if t.startswith("mount") and "overlay" in t]
        assert box.run(host, ["systemctl", "is-system-running"]).stdout.strip() == "running"
    finally:
        box.down()
    assert traces(state) == []


@pytest.mark.hosts
def test_a_host_that_does_not_boot_in_time_is_a_clear_error_and_up_cleans_up(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "slow"
    box = Sandbox(state)
    with pytest.raises(SandboxError) as caught:
        box.up(1, timeout=0.001)
    message = str(caught.value)
    first_network = str(next(box.subnet.subnets(new_prefix=24)))  # never used: hosts start at the 2nd
    prefix = first_network.rsplit(".", 2)[0]  # 10.87 by default, $DEPLOY_SANDBOX_SUBNET's otherwise
    assert message.startswith(f"host sandbox-1: SSH did not answer on {prefix}."), message
    assert "its console:" in message
    assert traces(state) == []
    assert not (state / "environment.yaml").exists()


@pytest.mark.hosts
def test_down_cleans_up_after_a_killed_up(tmp_path: Path) -> None:
    state = tmp_path / "killed"
    env = {"DEPLOY_SANDBOX_DIR": str(state)}
    up = subprocess.Popen(
        [sys.executable, "-m", "deploy", "sandbox", "up", "--hosts", "2"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(t.startswith("process") and "nspawn" in t for t in traces(state)):
            assert up.poll() is None, "up finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert traces(state), "the killed up left nothing to clean up; the test proves nothing"
    result = deploy_cli("sandbox", "down", env=env)
    assert result.returncode == 0, result.stderr
    assert traces(state) == []
    assert not state.exists()


@pytest.mark.hosts
def test_down_cleans_up_after_hosts_crashed(tmp_path: Path) -> None:
    state = tmp_path / "crashed"
    box = Sandbox(state)
    try:
        hosts = box.up(2)
        for host in hosts:
            assert host.pid is not None
            os.kill(host.pid, signal.SIGKILL)
        (state / "state.json").unlink()  # and the state is lost: down must find everything by scanning
        result = deploy_cli("sandbox", "down", env={"DEPLOY_SANDBOX_DIR": str(state)})
        assert result.returncode == 0, result.stderr
        assert traces(state) == []
    finally:
        box.down()


@pytest.mark.hosts
def test_down_removes_the_empty_cgroups_of_sandboxes_gone_without_a_down(tmp_path: Path) -> None:
    """What a sandbox whose hosts were killed and whose state folder is gone leaves: its cgroups, empty.
    Any down removes them; a cgroup with a process in it, or one made a moment ago, stays."""
    roots = cgroup_roots()
    name = f"{CGROUP_PREFIX}test{os.getpid()}"
    stale, busy, young = (f"{name}-stale", f"{name}-busy", f"{name}-young")
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        for root in roots:
            for group in (stale, busy, young):
                (root / group / "sandbox-2" / "payload" / "init.scope").mkdir(parents=True)
            (root / busy / "sandbox-2" / "payload" / "init.scope" / "cgroup.procs").write_text(
                str(sleeper.pid)
            )
            for group in (stale, busy):
                os.utime(root / group, (time.time() - 3600, time.time() - 3600))
        result = deploy_cli("sandbox", "down", env={"DEPLOY_SANDBOX_DIR": str(tmp_path / "none")})
        assert result.returncode == 0, result.stderr
        said = result.stdout + result.stderr  # progress lines go to stderr
        for root in roots:
            assert f"removed the empty cgroup {root / stale}, left by a sandbox gone without 'down'" in said
            assert not (root / stale).exists()
            assert (root / busy / "sandbox-2" / "payload" / "init.scope").is_dir()
            assert (root / young / "sandbox-2" / "payload" / "init.scope").is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
        assert remove_cgroups([root / group for root in roots for group in (stale, busy, young)]) == []


# --- Clear errors without prerequisites --------------------------------------------------------------


@pytest.mark.unit
def test_without_root_sandbox_says_so() -> None:
    require_tools("unshare")
    # In a new user namespace without a mapping this process is not root (euid 65534).
    result = subprocess.run(
        ["unshare", "--user", sys.executable, "-m", "deploy", "sandbox", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "needs root" in result.stderr and "sudo" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.unit
def test_without_systemd_nspawn_sandbox_says_what_to_install(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "ssh", "ssh-keygen", "mount", "umount"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        [sys.executable, "-m", "deploy", "sandbox", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert result.returncode == 2
    assert "missing systemd-nspawn, debootstrap" in result.stderr
    assert "apt-get install -y debootstrap systemd-container" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.unit
def test_ssh_command_line_quotes_once_and_verifies_host_keys() -> None:
    host = SandboxHost(
        name="sandbox-1",
        address="10.87.1.2",
        gateway="10.87.1.1",
        netns="n",
        veth="v",
        machine_dir="/m",
        mode="overlay",
        key="/s/id_ed25519",
        known_hosts="/s/known_hosts",
        environment_file="/s/environment.yaml",
    )
    argv = host.ssh_argv(["echo", "a b", "$x; rm -rf /"])
    assert argv[-3:] == ["root@10.87.1.2", "--", "echo 'a b' '$x; rm -rf /'"]
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "StrictHostKeyChecking=yes" in options
    assert "UserKnownHostsFile=/s/known_hosts" in options
    assert argv[argv.index("-i") + 1] == "/s/id_ed25519"
