"""Local Debian 12 test hosts: boot them with systemd-nspawn in their own network namespaces, and remove them.

`Sandbox(state_dir).up(n)` boots n hosts from the cached root filesystem (see `deploy.sandbox.rootfs`),
each on its own overlay (or copy), its own network namespace and veth pair, with systemd as PID 1 and
an SSH server whose host key is generated before boot, so `known_hosts` holds the real keys. `up`
writes the environment that `deploy ... -e sandbox` overlays onto deploy.yaml. `down()` removes every
process, namespace, link, mount and file it made, reading the state file and scanning for leftovers.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from deploy.config.sandbox_overlay import sandbox_environment_file
from deploy.sandbox import acme as sandbox_acme
from deploy.sandbox.boot import console_tail, host_key, prepare_machine, start, write_host_identity
from deploy.sandbox.hosts import SandboxHost, check_prerequisites, environment_text
from deploy.sandbox.network import (
    firewall_rules,
    free_networks,
    join_hosts,
    links,
    make_network,
    namespaces,
    unjoin_hosts,
)
from deploy.sandbox.processes import (
    alive,
    cgroup_processes,
    cgroups,
    mounts,
    nspawn_processes,
    remove_cgroups,
    run,
    send,
    stale_cgroups,
    wait_gone,
)
from deploy.sandbox.rootfs import (
    PACKAGES,
    Progress,
    SandboxError,
    ensure_rootfs,
    locked,
)
from deploy.sandbox.state import Names, State, read_state, write_state
from deploy.sandbox.usage import HostUsage, host_cgroup, usage

__all__ = [
    "PACKAGES",
    "Sandbox",
    "SandboxError",
    "SandboxHost",
    "check_prerequisites",
    "environment_text",
]

#: Addresses come from /24 networks inside this range, one per host, skipping any in use here.
DEFAULT_SUBNET = "10.87.0.0/16"
#: Held while an `up` picks and claims its networks.
NETWORK_LOCK = Path("/run/lock/deploy-sandbox-network.lock")
#: Written into the state folder when the sandbox makes its state there. The sandbox deletes files and
#: folders in its state folder as root: it uses only a new or empty folder, or one holding this marker,
#: so DEPLOY_SANDBOX_DIR naming ~/.ssh or / is refused before anything is touched.
MARKER = ".deploy-sandbox"


class Sandbox:
    """The sandbox hosts whose state lives in one directory (default: beside the -e sandbox file)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        packages: tuple[str, ...] = PACKAGES,
        subnet: str | None = None,
        cache: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        copy: bool = False,
    ):
        self.state_dir = Path(state_dir) if state_dir else sandbox_environment_file().parent
        self.state_dir = self.state_dir.absolute()
        self.packages = packages
        self.subnet = ipaddress.ip_network(
            subnet or os.environ.get("DEPLOY_SANDBOX_SUBNET") or DEFAULT_SUBNET
        )
        self.cache = Path(cache) if cache else None
        # Copy the root filesystem for each host instead of mounting an overlay on it.
        self.copy = copy or os.environ.get("DEPLOY_SANDBOX_COPY") == "1"
        self.say: Callable[[str], None] = progress or (lambda _message: None)
        # Kernel object names carry a tag of the state directory, so two sandboxes never collide and
        # a scan for leftovers finds only this one's.
        self.tag = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:4]

    # Paths ---------------------------------------------------------------------------------------
    @property
    def environment_file(self) -> Path:
        return self.state_dir / "environment.yaml"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def hosts_file(self) -> Path:
        """Names and addresses in /etc/hosts format, for tools that need to reach hosts by name."""
        return self.state_dir / "hosts"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def machines_dir(self) -> Path:
        return self.state_dir / "machines"

    @property
    def acme_dir(self) -> Path:
        """Pebble's files: config, API certificate, logs, its issuing root (`root.pem`), the CA bundle."""
        return self.state_dir / "acme"

    @property
    def _cgroup_name(self) -> str:
        return f"deploy-sandbox-{self.tag}"

    def _files(self) -> list[Path]:
        return [
            self.environment_file,
            self.key,
            self.key.with_suffix(".pub"),
            self.known_hosts,
            self.hosts_file,
            self.state_file,
        ]

    # State ---------------------------------------------------------------------------------------
    def _claim(self, create: bool = True) -> None:
        """Make the state folder the sandbox's own, or check that it is: new, empty, or holding MARKER.

        Anything else (a folder of other files, a file) is refused with code 2 before the sandbox
        deletes, kills or writes anything; `create=False` only checks a folder that exists.
        """
        folder, marker = self.state_dir, self.state_dir / MARKER
        if not create and not folder.exists():
            return
        try:
            folder.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise SandboxError(f"the sandbox's state folder {folder} is not a folder", code=2) from None
            if marker.is_file() and not marker.is_symlink():
                self._refuse_links()
                return
            others = sorted(p.name for p in folder.iterdir())
            if others:
                shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                raise SandboxError(
                    f"the sandbox's state folder {folder} (DEPLOY_SANDBOX_DIR) is not the sandbox's: it "
                    f"holds {shown} but no {MARKER} marker; the sandbox deletes files there as root, so it "
                    "uses only a new or empty folder (or, for a sandbox made by an older deploy, one you "
                    f"mark with 'touch {marker}'); nothing was changed",
                    code=2,
                ) from None
        except OSError as exc:
            raise SandboxError(f"cannot make the sandbox's state folder {folder}: {exc}", code=2) from None
        if create:
            marker.write_text("deploy sandbox state: 'deploy sandbox down' removes this folder\n", "utf-8")

    def _refuse_links(self) -> None:
        """Refuse a symbolic link in place of a file or folder the sandbox writes or removes as root
        (up would write through it, down remove what it points to)."""
        own = [*self._files(), self.machines_dir, self.acme_dir, self.state_dir / ".lock"]
        own.append(self.state_file.with_suffix(".tmp"))
        links = [p.name for p in own if p.is_symlink()]
        if links:
            raise SandboxError(
                f"the sandbox's state folder {self.state_dir} holds a symbolic link where the sandbox "
                f"keeps its own files: {', '.join(links)}; the sandbox writes and removes these as root, "
                "never through a link: remove the link; nothing was changed",
                code=2,
            )

    @property
    def _names(self) -> Names:
        return Names(
            self.tag, self.machines_dir, self.key, self.known_hosts, self.environment_file, self.acme_dir
        )

    def _read_state(self) -> State | None:
        return read_state(self.state_file, self._names, self.say)

    def _write_state(self, state: State) -> None:
        write_state(self.state_file, state)

    def hosts(self) -> list[SandboxHost]:
        """The hosts `up` booted, from the state file (empty when the sandbox is down)."""
        state = self._read_state()
        if state is None or state.status != "up":
            return []
        return [SandboxHost(**h) for h in state.hosts]

    def acme(self) -> sandbox_acme.AcmeServer | None:
        """The ACME server (pebble) `up` started for -e sandbox, or None (not installed, --no-acme, down)."""
        state = self._read_state()
        if state is None or state.status != "up" or not state.acme:
            return None
        return sandbox_acme.AcmeServer(**state.acme)

    def host(self, name: str) -> SandboxHost:
        """The host called `name`; SandboxError naming the known ones if there is none."""
        hosts = self.hosts()
        for host in hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in hosts) or "none: run 'deploy sandbox up' first"
        raise SandboxError(f"no sandbox host {name!r}; hosts: {known}", code=2)

    def usage(self, host: SandboxHost) -> HostUsage | None:
        """What the host costs this machine now (CPU seconds since boot, memory), or None if it is down."""
        group = host_cgroup(self._cgroup_name, host.name)
        return usage(group) if group is not None and self.is_running(host) else None

    def is_running(self, host: SandboxHost) -> bool:
        """Whether the host's systemd-nspawn process is still there."""
        return host.pid is not None and host.pid in self._nspawn_processes()

    def restart(self, name: str, timeout: float = 120.0) -> SandboxHost:
        """Boot a host again after it halted or rebooted (`systemctl reboot` ends its systemd-nspawn).

        Its root filesystem, network and keys are the same; whatever was in its /run is gone, as after
        a real reboot. Waits until systemd has finished booting and SSH answers.
        """
        self._claim(create=False)
        with locked(self.state_dir / ".lock"):
            state = self._read_state()
            host = self.host(name)
            if state is None or self.is_running(host):
                raise SandboxError(f"host {name} is still running (pid {host.pid})", code=2)
            started = time.monotonic()
            host = start(host, self._cgroup_name, self.say)
            state.hosts = [asdict(host) if h["name"] == name else h for h in state.hosts]
            self._write_state(state)
        self._wait_booted(host, started, timeout)
        return host

    # Up ------------------------------------------------------------------------------------------
    def up(self, count: int = 1, timeout: float = 120.0, acme: bool = True) -> list[SandboxHost]:
        """Boot `count` hosts and wait until systemd has finished booting and SSH answers on each.

        With `acme` (and Debian's pebble installed), also start a local ACME server that -e sandbox
        uses for `tls: {email: ...}`, so certbot on the hosts gets real certificates (see `acme()`).
        """
        if not 1 <= count <= 50:
            raise SandboxError(f"--hosts must be between 1 and 50, got {count}", code=2)
        check_prerequisites()
        self._claim()
        with locked(self.state_dir / ".lock"):
            state = self._read_state()
            if state is not None and any(h.get("pid") in self._nspawn_processes() for h in state.hosts):
                raise SandboxError(
                    f"the sandbox in {self.state_dir} is already up; run 'deploy sandbox down' first", code=2
                )
            self._teardown(quiet=True)
            try:
                return self._up(count, timeout, acme)
            except BaseException:
                self.say("up failed: removing what it made")
                # A host still booting may not act on the halt signal yet: do not wait long for it.
                self._teardown(timeout=5, quiet=True)
                self._remove_files()
                raise

    def _up(self, count: int, timeout: float, acme: bool) -> list[SandboxHost]:
        began = time.monotonic()
        rootfs = ensure_rootfs(self.packages, self.cache, self.say)
        started = time.monotonic()
        self._remove_files()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-sandbox", "-f", str(self.key)])
        # One lock for every sandbox on this machine: two `up`s must not pick the same free network.
        with locked(NETWORK_LOCK):
            networks = free_networks(self.subnet, count)
            hosts = []
            for index, network in enumerate(networks, start=1):
                name = f"sandbox-{index}"
                hosts.append(
                    SandboxHost(
                        name=name,
                        address=str(network.network_address + 2),
                        gateway=str(network.network_address + 1),
                        netns=f"deploy-{self.tag}-{name}",
                        veth=f"dsb{self.tag}-{index}",
                        machine_dir=str(self.machines_dir / name),
                        mode="overlay",
                        key=str(self.key),
                        known_hosts=str(self.known_hosts),
                        environment_file=str(self.environment_file),
                    )
                )
            state = State(rootfs=str(rootfs), hosts=[asdict(h) for h in hosts])
            self._write_state(state)  # before anything exists, so that a killed `up` can be undone
            for host in hosts:
                make_network(host.netns, host.veth, host.gateway, host.address, str(self.subnet))
            join_hosts(self.tag, self.say)

        # Pebble starts while the hosts boot; it must be up (or have failed) before `up` goes on.
        acme_result: list[sandbox_acme.AcmeServer | BaseException] = []
        acme_thread = self._start_acme(hosts, acme_result) if acme else None
        try:
            hosts = self._boot(hosts, state, rootfs, started, timeout)
        finally:
            if acme_thread is not None:
                acme_thread.join()
        server = None
        if acme_result:
            if isinstance(acme_result[0], BaseException):
                raise SandboxError(
                    f"the ACME server (pebble) did not start: {acme_result[0]}\n"
                    "start the sandbox without it with 'deploy sandbox up --no-acme'"
                ) from acme_result[0]
            server = acme_result[0]
            state.acme = asdict(server)
            self._write_state(state)

        self.environment_file.write_text(environment_text(hosts, self.key, self.known_hosts, server), "utf-8")
        state.status = "up"
        self._write_state(state)
        self.say(
            f"sandbox up: {count} host(s) in {time.monotonic() - began:.1f}s; "
            f"-e sandbox reads {self.environment_file}"
        )
        return hosts

    def _start_acme(
        self, hosts: list[SandboxHost], result: list[sandbox_acme.AcmeServer | BaseException]
    ) -> threading.Thread | None:
        """Start pebble in a thread, on the first host's gateway; the other hosts get a route to it."""
        missing = sandbox_acme.missing_tools()
        if missing:
            self.say(
                f"HTTPS: no certificates in this sandbox: {', '.join(missing)} not installed "
                f"({sandbox_acme.install_hint(missing)}); -e sandbox serves tls: {{email}} sites over HTTP"
            )
            return None
        first = hosts[0]
        for host in hosts[1:]:
            # This machine's address on the first link, reached through the host's own link.
            run(["ip", "-n", host.netns, "route", "replace", f"{first.gateway}/32", "via", host.gateway])

        def start() -> None:
            try:
                result.append(sandbox_acme.start(self.acme_dir, first.gateway, first.address))
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        return thread

    def _boot(
        self, hosts: list[SandboxHost], state: State, rootfs: Path, started: float, timeout: float
    ) -> list[SandboxHost]:
        """Prepare each host's root, start it, and wait until every one has booted."""
        hosts = list(hosts)
        known_lines = []
        hosts_lines = [f"{h.address}\t{h.name}" for h in hosts]
        for number, host in enumerate(hosts):
            host = prepare_machine(host, rootfs, self.copy, self.say)
            known_lines.append(f"{host.name},{host.address} {host_key(host)}")
            write_host_identity(host, hosts_lines, self.key.with_suffix(".pub"))
            host = start(host, self._cgroup_name, self.say)
            hosts[number] = host
            state.hosts[number] = asdict(host)
            self._write_state(state)
        self.known_hosts.write_text("\n".join(known_lines) + "\n", encoding="utf-8")
        self.hosts_file.write_text("\n".join(hosts_lines) + "\n", encoding="utf-8")

        errors: dict[str, BaseException] = {}

        def wait(host: SandboxHost) -> None:
            try:
                self._wait_booted(host, started, timeout)
            except BaseException as exc:
                errors[host.name] = exc

        threads = [threading.Thread(target=wait, args=(h,), daemon=True) for h in hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise SandboxError("\n".join(f"host {name}: {exc}" for name, exc in sorted(errors.items())))
        return hosts

    def _wait_booted(self, host: SandboxHost, started: float, timeout: float) -> None:
        deadline = started + timeout
        while True:
            if host.pid not in self._nspawn_processes():
                raise SandboxError(f"systemd-nspawn exited during boot; its console:\n{console_tail(host)}")
            with contextlib.suppress(OSError), socket.create_connection((host.address, host.port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"SSH did not answer on {host.address}:{host.port} within {timeout:.0f}s; "
                    f"its console:\n{console_tail(host)}"
                )
            time.sleep(0.2)
        remaining = max(5.0, deadline - time.monotonic())
        try:
            result = self.run(host, ["systemctl", "is-system-running", "--wait"], timeout=remaining)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"systemd did not finish booting within {timeout:.0f}s") from None
        status = result.stdout.strip()
        if status == "running":
            self.say(f"host {host.name}: booted in {time.monotonic() - started:.1f}s, systemd running")
        elif status == "degraded":
            failed = self.run(host, ["systemctl", "--failed", "--plain", "--no-legend"]).stdout
            units = ", ".join(line.split()[0] for line in failed.splitlines() if line.strip()) or "unknown"
            self.say(
                f"host {host.name}: booted in {time.monotonic() - started:.1f}s, systemd degraded: "
                f"failed units: {units}"
            )
        else:
            raise SandboxError(f"systemctl is-system-running said {status!r}: {result.stderr.strip()}")

    # Using hosts ---------------------------------------------------------------------------------
    def run(
        self,
        host: SandboxHost | str,
        command: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one command on a host over SSH (host keys verified); return its result."""
        target = self.host(host) if isinstance(host, str) else host
        result = subprocess.run(
            target.ssh_argv(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"on {target.name}: {shlex.join(command)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    # Down ----------------------------------------------------------------------------------------
    def down(self, timeout: float = 20.0) -> None:
        """Stop every host and remove every process, namespace, link, mount and file `up` made."""
        check_prerequisites(("ip", "umount"))
        if not self.state_dir.exists() and not self.leftovers():
            self._remove_stale_cgroups()
            self.say("sandbox: nothing to remove")
            return
        self._claim()
        with locked(self.state_dir / ".lock"):
            self._teardown(timeout=timeout)
            left = self.leftovers()
            if left:
                raise SandboxError("could not remove: " + "; ".join(left))
            self._remove_files()
        self._remove_stale_cgroups()
        with contextlib.suppress(OSError):
            (self.state_dir / ".lock").unlink()
            (self.state_dir / MARKER).unlink()
            self.state_dir.rmdir()
        self.say("sandbox down: nothing left behind")

    def _remove_stale_cgroups(self) -> None:
        """The empty cgroups of sandboxes gone without a down: nothing else would ever find them."""
        for group in stale_cgroups():
            if not remove_cgroups([group], timeout=0):
                self.say(f"removed the empty cgroup {group}, left by a sandbox gone without 'down'")

    def _remove_files(self) -> None:
        for path in self._files():
            path.unlink(missing_ok=True)
        if self.acme_dir.exists() and not sandbox_acme.processes(self.acme_dir):
            shutil.rmtree(self.acme_dir)
        self.state_file.with_suffix(".tmp").unlink(missing_ok=True)

    def _teardown(self, timeout: float = 20.0, quiet: bool = False) -> None:
        """Undo whatever exists, from the state file and from a scan for this sandbox's leftovers."""
        say = (lambda _m: None) if quiet else self.say
        state = self._read_state()
        known = [SandboxHost(**h) for h in state.hosts] if state else []
        recorded = list((state.acme or {}).get("pids", [])) if state else []
        if recorded or sandbox_acme.processes(self.acme_dir):
            stopped = sandbox_acme.stop(self.acme_dir, recorded)
            if stopped:
                say(f"ACME server: stopped pebble (pids {', '.join(map(str, stopped))})")
        pids = set(self._nspawn_processes())
        if pids:
            names = {h.pid: h.name for h in known}
            for pid in sorted(pids):
                say(f"host {names.get(pid, '?')}: stopping (pid {pid})")
                send(pid, signal.SIGTERM)
            gone = wait_gone(pids, timeout)
            if not gone:
                still = sorted(p for p in pids if alive(p))
                say(f"killing pids {', '.join(map(str, still))} after {timeout:.0f}s")
                for pid in still:
                    send(pid, signal.SIGKILL)
                wait_gone(set(still), 10)
        stray_pids = self._cgroup_processes()
        for pid in stray_pids:
            send(pid, signal.SIGKILL)
        wait_gone(set(stray_pids), 10)
        remove_cgroups(self._cgroups())
        for netns in sorted({h.netns for h in known} | set(namespaces(self.tag))):
            if not Path("/run/netns", netns).exists():
                continue
            inside = subprocess.run(
                ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
            )
            stray = [int(p) for p in inside.stdout.split() if p.isdigit()]
            for pid in stray:
                send(pid, signal.SIGKILL)
            wait_gone(set(stray), 10)
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        for veth in sorted({h.veth for h in known} | set(links(self.tag))):
            if Path("/sys/class/net", veth).exists():
                subprocess.run(["ip", "link", "delete", veth], capture_output=True, check=False)
        unjoin_hosts(self.tag)
        for mount in sorted(self._mounts(), key=len, reverse=True):
            if subprocess.run(["umount", mount], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        if self.machines_dir.exists():
            if self._mounts():
                raise SandboxError(f"mounts remain under {self.machines_dir}: {', '.join(self._mounts())}")
            shutil.rmtree(self.machines_dir)
            say(f"removed {self.machines_dir}")

    # Scans ---------------------------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """Everything of this sandbox that still exists on this machine, described (empty when down)."""
        out = [f"process {pid} (systemd-nspawn)" for pid in self._nspawn_processes()]
        out += [f"process {pid} (the ACME server)" for pid in sandbox_acme.processes(self.acme_dir)]
        out += [f"process {pid} (in the sandbox's cgroup)" for pid in self._cgroup_processes()]
        out += [f"cgroup {group}" for group in self._cgroups()]
        out += [f"network namespace {n}" for n in namespaces(self.tag)]
        out += [f"link {link}" for link in links(self.tag)]
        out += [f"firewall rule {rule}" for rule in firewall_rules(self.tag)]
        out += [f"mount {m}" for m in self._mounts()]
        if self.machines_dir.exists():
            out.append(f"directory {self.machines_dir}")
        return out

    def _nspawn_processes(self) -> list[int]:
        return nspawn_processes(self.machines_dir)

    def _mounts(self) -> list[str]:
        """Mount points under the machines directory or on this sandbox's /run/netns entries."""
        return mounts(self.machines_dir, f"deploy-{self.tag}-")

    def _cgroups(self) -> list[Path]:
        return cgroups(self._cgroup_name)

    def _cgroup_processes(self) -> list[int]:
        """Every process in this sandbox's cgroups: the hosts' systemds and everything they started."""
        return cgroup_processes(self._cgroups())
