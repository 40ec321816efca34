"""Booting one sandbox host: its own root (an overlay on the cached root filesystem, else a copy), its
SSH host key and identity written before boot, and systemd-nspawn started in the host's own cgroup."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

from deploy.sandbox.hosts import SandboxHost
from deploy.sandbox.processes import cgroup_roots, run
from deploy.sandbox.rootfs import Progress, write_inside


def prepare_machine(host: SandboxHost, rootfs: Path, copy: bool, say: Progress) -> SandboxHost:
    """Give the host its own root: an overlay on the cached root filesystem, else a copy."""
    machine = Path(host.machine_dir)
    root = machine / "root"
    for sub in ("upper", "work", "root"):
        (machine / sub).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={rootfs},upperdir={machine / 'upper'},workdir={machine / 'work'}"
    if not copy and not any(c in str(path) for path in (rootfs, machine) for c in ",:"):
        result = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return host
        say(f"host {host.name}: overlay not possible here ({result.stderr.strip()}); copying instead")
    root.rmdir()
    run(["cp", "-a", "--reflink=auto", str(rootfs), str(root)])
    return SandboxHost(**{**asdict(host), "mode": "copy"})


def host_key(host: SandboxHost) -> str:
    """Generate the host's SSH key pair into its root; return the public key line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(path)])
        public = path.with_suffix(".pub").read_text(encoding="utf-8").strip()
        write_inside(host.root, "etc/ssh/ssh_host_ed25519_key", path.read_text(encoding="utf-8"), 0o600)
        write_inside(host.root, "etc/ssh/ssh_host_ed25519_key.pub", public + "\n", 0o644)
    key_type, key_data = public.split()[:2]
    return f"{key_type} {key_data}"


def write_host_identity(host: SandboxHost, hosts_lines: list[str], public_key: Path) -> None:
    """Hostname, machine id, /etc/hosts and root's authorized key, written before boot."""
    root = host.root
    write_inside(root, "etc/hostname", host.name + "\n")
    write_inside(root, "etc/machine-id", os.urandom(16).hex() + "\n", 0o444)
    write_inside(
        root,
        "etc/hosts",
        "127.0.0.1\tlocalhost\n127.0.1.1\t" + host.name + "\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n" + "\n".join(hosts_lines) + "\n",
    )
    public = public_key.read_text(encoding="utf-8")
    write_inside(root, "root/.ssh/authorized_keys", public, 0o600, dir_mode=0o700)


def start(host: SandboxHost, cgroup_name: str, say: Progress) -> SandboxHost:
    """Start systemd-nspawn in the background in its own cgroup; its console goes to console.log."""
    command = [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        f"--directory={host.root}",
        f"--machine={host.name}",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{host.netns}",
        "--resolv-conf=off",
        "--link-journal=no",
        "--console=read-only",
    ]
    # With --keep-unit, nspawn makes its "supervisor" and "payload" cgroups under its own cgroup:
    # hosts started from one process would share them, and their systemds would trample each other.
    procs = []
    for root in cgroup_roots():
        group = root / cgroup_name / host.name
        group.mkdir(parents=True, exist_ok=True)
        procs.append(str(group / "cgroup.procs"))

    def join_cgroups() -> None:
        for path in procs:
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))

    log = open(Path(host.machine_dir) / "console.log", "wb")  # noqa: SIM115 - handed to the child
    with log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_cgroups,
        )
    say(f"host {host.name}: starting at {host.address} (pid {process.pid}, {host.mode})")
    return SandboxHost(**{**asdict(host), "pid": process.pid})


def console_tail(host: SandboxHost, lines: int = 15) -> str:
    """The last lines of the host's console, indented, for an error message."""
    with contextlib.suppress(OSError):
        text = (Path(host.machine_dir) / "console.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join("  " + line for line in text.splitlines()[-lines:])
    return "  (no console output)"
