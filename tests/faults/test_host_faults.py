"""Faults of the hosts and the way to them: a second push at once, a wrong SSH key, a changed host key,
the link cut mid-push, a reboot mid-push, a full disk during the upload.

After each: every host serves one release consistently (the previous one unless the push completed),
the shared data is intact, no lock is left held, and the next push succeeds. Every wait is bounded.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.faults.faultkit import (
    Push,
    assert_serves,
    configure,
    fresh,
    is_step,
    lock_status_after_interruption,
    lock_status_until,
    recover,
    served,
)
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults

#: Makes the new release take 3 s to boot, so a fault lands while its health gate waits.
SLOW_BOOT = "    import time as _t\n    _t.sleep(3)\n"


def releases(box: Sandbox, host: SandboxHost) -> str:
    return box.run(host, ["ls", "-a", "/srv/flaskr/releases"], check=True).stdout


def variant(project: Project, name: str, old: str, new: str) -> str:
    """A copy of deploy.yaml with one value replaced (git ignores faults-*.yaml); its file name."""
    text = (project.path / "deploy.yaml").read_text(encoding="utf-8")
    assert old in text
    path = project.path / f"faults-{name}.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path.name


def test_two_pushes_at_once_one_proceeds_the_other_fails_at_once(
    fault_box: Sandbox, live_project: Project
) -> None:
    before = served(live_project)
    new = fresh()
    live_project.set_version(new)
    first = Push(live_project, pause_at="upload")
    first.wait_paused([h.address for h in live_project.hosts])
    second = live_project.deploy("push", timeout=60)
    out = second.stdout + second.stderr
    # It did not wait for the holder: the first push is still stopped while the second has ended.
    assert first.process.poll() is None
    assert second.returncode == 1, out
    assert "the deploy lock is held by" in out and f"pid {first.process.pid}," in out, out
    assert "Traceback" not in out
    assert_serves(fault_box, live_project, before)
    first.resume()
    assert first.finish() == 0
    assert_serves(fault_box, live_project, new)
    assert "held by" not in lock_status_after_interruption(live_project)


def test_wrong_ssh_key_is_a_clear_error_and_changes_nothing(
    fault_box: Sandbox, live_project: Project, tmp_path: Path
) -> None:
    before = served(live_project)
    listing = [releases(fault_box, h) for h in live_project.hosts]
    key = tmp_path / "not-authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = variant(live_project, "wrong-key", f"key: {live_project.hosts[0].key}", f"key: {key}")
    live_project.set_version(fresh())
    result = live_project.deploy("push", "-c", config, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "SSH authentication as root failed" in out and "check server.ssh.key" in out, out
    assert "nothing was changed" in out and "Traceback" not in out
    assert [releases(fault_box, h) for h in live_project.hosts] == listing
    recover(fault_box, live_project, before, interrupted=False)


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_changed_host_key_is_refused_even_with_accept_new_host_keys(
    fault_box: Sandbox, live_project: Project, tmp_path: Path, key_type: str
) -> None:
    before = served(live_project)
    listing = [releases(fault_box, h) for h in live_project.hosts]
    other = tmp_path / "other-host-key"
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(other)], check=True)
    kind, data = other.with_suffix(".pub").read_text().split()[:2]
    real = Path(live_project.hosts[0].known_hosts).read_text().splitlines()
    # The same names, but another key: what a reinstalled (or impersonated) host looks like.
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{line.split()[0]} {kind} {data}\n" for line in real))
    real_file = live_project.hosts[0].known_hosts
    config = variant(live_project, "changed-key", f"known_hosts: {real_file}", f"known_hosts: {known}")
    live_project.set_version(fresh())
    for extra in ([], ["--accept-new-host-keys"]):
        result = live_project.deploy("push", "-c", config, *extra, timeout=60)
        out = result.stdout + result.stderr
        assert result.returncode == 1, out
        assert "HOST KEY CHANGED" in out and str(known) in out, out
        assert "Traceback" not in out
        assert known.read_text() == "".join(f"{line.split()[0]} {kind} {data}\n" for line in real)
    assert [releases(fault_box, h) for h in live_project.hosts] == listing
    recover(fault_box, live_project, before, interrupted=False)


def test_link_cut_mid_push_then_restored(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    new = fresh()
    live_project.set_version(new, SLOW_BOOT)
    target = live_project.hosts[1]
    push = Push(live_project)
    push.wait_for(is_step("health", "start", target.address))
    subprocess.run(["ip", "link", "set", target.veth, "down"], check=True)
    try:
        time.sleep(5)  # the length of the outage, not a wait for something to happen
    finally:
        subprocess.run(["ip", "link", "set", target.veth, "up"], check=True)
    code = push.finish(timeout=180)
    # Either outcome is clean, and every host agrees with it.
    assert code in (0, 1), push.output
    assert_serves(fault_box, live_project, new if code == 0 else before)
    recover(fault_box, live_project, new if code == 0 else before, interrupted=False)


def test_host_rebooted_mid_push_comes_back_serving_the_previous_release(
    fault_box: Sandbox, live_project: Project
) -> None:
    before = served(live_project)
    live_project.set_version(fresh(), SLOW_BOOT)
    target = live_project.hosts[1]
    push = Push(live_project)
    push.wait_for(is_step("health", "start", target.address))
    fault_box.run(target, ["systemctl", "reboot"], timeout=30)
    code = push.finish(timeout=180)
    assert code == 1, push.output
    assert target.address in push.output and "Traceback" not in push.output
    deadline = time.monotonic() + 60
    while fault_box.is_running(fault_box.host(target.name)):
        assert time.monotonic() < deadline, "the host did not go down for its reboot"
        time.sleep(0.2)
    fault_box.restart(target.name)
    # Nobody touched the host since it booted: Nginx and the live slot came back by themselves.
    assert_serves(fault_box, live_project, before)
    recover(fault_box, live_project, before, interrupted=None)


_SMALL_DISK = r"""
set -e
mkdir /run/faults-releases
cp -a /srv/flaskr/releases/. /run/faults-releases/
mount -t tmpfs -o size=64m,mode=0755 faults-disk /srv/flaskr/releases
cp -a /run/faults-releases/. /srv/flaskr/releases/
rm -rf /run/faults-releases
fallocate -l "$(df --output=avail -B1 /srv/flaskr/releases | tail -n 1)" /srv/flaskr/releases/.faults-filler
df -h /srv/flaskr/releases
"""

_BACK_ON_DISK = r"""
set -e
mkdir -p /run/faults-releases
cp -a /srv/flaskr/releases/. /run/faults-releases/
umount --lazy /srv/flaskr/releases
cp -a /run/faults-releases/. /srv/flaskr/releases/
rm -rf /run/faults-releases
"""


def test_full_disk_during_upload_fails_cleanly(fault_box: Sandbox, live_project: Project) -> None:
    """The host's releases folder is a full 64 MB tmpfs (never the test machine's own disk)."""
    before = served(live_project)
    target = live_project.hosts[1]
    print(fault_box.run(target, ["sh", "-c", _SMALL_DISK], check=True, timeout=60).stdout)
    try:
        live_project.set_version(fresh())
        result = live_project.deploy("push", timeout=180)
        out = result.stdout + result.stderr
        assert result.returncode == 1, out
        assert f"{target.address}: upload failed" in out and "No space left on device" in out, out
        assert "Traceback" not in out
        assert_serves(fault_box, live_project, before)
        fault_box.run(target, ["rm", "-f", "/srv/flaskr/releases/.faults-filler"], check=True)
        recover(fault_box, live_project, before, interrupted=False)
    finally:
        fault_box.run(target, ["rm", "-f", "/srv/flaskr/releases/.faults-filler"])
        fault_box.run(target, ["sh", "-c", _BACK_ON_DISK], check=True, timeout=60)


def test_a_step_past_push_step_timeout_fails_clearly_and_the_lock_waits_for_it(
    fault_box: Sandbox, live_project: Project
) -> None:
    before = served(live_project)
    host = live_project.hosts[0]
    go = "/tmp/faults-slow-release-go"
    fault_box.run(host, ["rm", "-f", go], check=True)
    # A release command that outlives the step timeout (as a host whose link stays down would).
    configure(live_project, release=f'["while [ ! -e {go} ]; do sleep 0.2; done"]')
    config = variant(live_project, "step-timeout", "health_timeout: 8", "health_timeout: 8, step_timeout: 10")
    live_project.set_version(fresh())
    started = time.monotonic()
    try:
        result = live_project.deploy("push", "-c", config, timeout=120)
        out = result.stdout + result.stderr
        print(f"$ deploy push -c {config}  (exit {result.returncode})\n{out}")
        assert result.returncode == 1, out
        assert time.monotonic() - started < 60, out
        assert "the release step did not finish within 10s (push.step_timeout)" in out, out
        assert "nothing switched for good" in out, out
        assert "Traceback" not in out
        # The push has ended, but its release command has not: the lock stays held until it ends.
        status = lock_status_until(live_project, "is still finishing")
        print(f"$ deploy lock status\n{status}")
        assert f"{host.address}: held by" in status and "its last step (release)" in status, status
    finally:
        fault_box.run(host, ["touch", go], check=True)
    configure(live_project)
    recover(fault_box, live_project, before, interrupted=False)
