"""The processes, cgroups and mounts a sandbox makes on this machine: run, signal, wait for and find them."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from deploy.sandbox.rootfs import SandboxError


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command here; SandboxError with its stderr when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{shlex.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def is_pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**22


def send(pid: int, sig: signal.Signals) -> None:
    """Signal a process that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def reap(pid: int) -> None:
    """Collect a child of this process that has exited (up and down in one process, as in tests)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        reap(pid)
        return False
    return True


def wait_gone(pids: set[int], timeout: float) -> bool:
    """Wait until none of `pids` is alive; False if some still are after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies systemd uses: the unified (v2) one and the v1 name=systemd one."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
            roots.append(Path(unescape(fields[4])))
    return roots


def unescape(text: str) -> str:
    """Undo the octal escapes of /proc/self/mountinfo (\\040 for a space)."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


def nspawn_processes(machines_dir: Path) -> list[int]:
    """systemd-nspawn processes booting a root under `machines_dir` (exited ones are reaped)."""
    marker = f"--directory={machines_dir}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if status == "Z":
            reap(int(entry.name))
            continue
        if (
            argv
            and argv[0].endswith(b"systemd-nspawn")
            and any(a.decode(errors="replace").startswith(marker) for a in argv)
        ):
            found.append(int(entry.name))
    return found


def cgroups(name: str) -> list[Path]:
    """The cgroups called `name` in every hierarchy systemd uses."""
    return [root / name for root in cgroup_roots() if (root / name).is_dir()]


def cgroup_processes(groups: Iterable[Path]) -> list[int]:
    """Every process in `groups` and below: the hosts' systemds and everything they started."""
    found: set[int] = set()
    for group in groups:
        for procs in group.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in procs.read_text().split() if p.isdigit())
    return sorted(found)


#: The cgroups of every sandbox on this machine are named so (`Sandbox._cgroup_name`).
CGROUP_PREFIX = "deploy-sandbox-"


def remove_cgroups(groups: Iterable[Path], timeout: float = 5.0) -> list[Path]:
    """Remove each of `groups` and the cgroups below it, deepest first; the ones that stay. A cgroup
    with a process in it stays; one whose processes were just killed can stay busy for a moment
    (the kernel keeps an ended process in its cgroup until its parent has reaped it): tried again
    for up to `timeout` seconds while no process is left in it."""
    left = list(groups)
    deadline = time.monotonic() + timeout
    while left:
        for group in left:
            below = sorted(
                (p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            )
            for path in [*below, group]:
                with contextlib.suppress(OSError):
                    path.rmdir()
        left = [group for group in left if group.exists()]
        if not left or cgroup_processes(left) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return left


def stale_cgroups(min_age: float = 60.0) -> list[Path]:
    """Sandbox cgroups on this machine that hold no process and have not changed for `min_age`
    seconds: left by sandboxes that ended without 'deploy sandbox down' (their hosts killed, their
    state folder removed), which no down of their own can find any more. A sandbox being booted
    has just made its cgroup; one whose hosts are only halted makes it again when a host restarts."""
    now = time.time()
    found = []
    for root in cgroup_roots():
        for group in sorted(root.glob(f"{CGROUP_PREFIX}*")):
            with contextlib.suppress(OSError):
                if group.is_dir() and now - group.stat().st_mtime > min_age and not cgroup_processes([group]):
                    found.append(group)
    return found


def mounts(machines_dir: Path, netns_prefix: str) -> list[str]:
    """Mount points under `machines_dir` (or it) and on /run/netns entries starting with `netns_prefix`."""
    prefixes = (f"{machines_dir}/", f"/run/netns/{netns_prefix}")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = unescape(line.split()[4])
        if point.startswith(prefixes) or point == str(machines_dir):
            found.append(point)
    return found
