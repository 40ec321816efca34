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
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.config.loader import sandbox_environment_file
from deploy.sandbox import acme as sandbox_acme
from deploy.sandbox.rootfs import (
    PACKAGES,
    Progress,
    SandboxError,
    ensure_rootfs,
    locked,
    write_inside,
)

__all__ = ["PACKAGES", "Sandbox", "SandboxError", "SandboxHost", "check_prerequisites"]

#: Addresses come from /24 networks inside this range, one per host, skipping any in use here.
DEFAULT_SUBNET = "10.87.0.0/16"
#: The account `deploy` uses on sandbox hosts.
SSH_USER = "root"
STATE_VERSION = 1
#: Held while an `up` picks and claims its networks.
NETWORK_LOCK = Path("/run/lock/deploy-sandbox-network.lock")
#: Written into the state folder when the sandbox makes its state there. The sandbox deletes files and
#: folders in its state folder as root: it uses only a new or empty folder, or one holding this marker,
#: so DEPLOY_SANDBOX_DIR naming ~/.ssh or / is refused before anything is touched.
MARKER = ".deploy-sandbox"
_HOST_NAME = re.compile(r"sandbox-([1-9][0-9]?)")

#: Tool -> Debian package that provides it.
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "umount": "mount",
}


def check_prerequisites(tools: Sequence[str] = tuple(TOOLS)) -> None:
    """Raise SandboxError (code 2) naming what is missing and how to install it: root, then tools."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "deploy sandbox needs root (it creates network namespaces, mounts and containers): "
            "run it as root or with sudo"
        )
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({TOOLS[tool] for tool in missing})
        problems.append(
            f"missing {', '.join(missing)}: install with 'sudo apt-get install -y {' '.join(packages)}'"
        )
    if problems:
        raise SandboxError("\n".join(problems), code=2)


@dataclass(frozen=True)
class SandboxHost:
    """One booted host, and everything needed to reach it over SSH."""

    name: str
    address: str
    gateway: str
    netns: str
    veth: str
    machine_dir: str
    mode: str
    key: str
    known_hosts: str
    environment_file: str
    pid: int | None = None
    user: str = SSH_USER
    port: int = 22

    @property
    def root(self) -> Path:
        """The host's root filesystem as seen from this machine."""
        return Path(self.machine_dir) / "root"

    def ssh_argv(self, command: Sequence[str] | None = None, *, batch: bool = True) -> list[str]:
        """The ssh command line that reaches this host with host-key verification on."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            self.key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.port),
        ]
        if batch:
            argv += ["-o", "BatchMode=yes"]
        argv.append(f"{self.user}@{self.address}")
        if command:
            argv += ["--", shlex.join(command)]
        return argv


@dataclass
class _State:
    """What `up` made, written before and while it is made so that `down` can undo a crashed `up`."""

    version: int = STATE_VERSION
    status: str = "starting"
    rootfs: str = ""
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: The ACME server (pebble) `up` started: `sandbox_acme.AcmeServer` fields, pids included.
    acme: dict[str, Any] | None = None


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

    def _read_state(self) -> _State | None:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.say(f"warning: ignoring unreadable {self.state_file}: {exc}")
            return None
        problem = self._state_problem(data)
        if problem is not None:
            raise SandboxError(
                f"{self.state_file} does not describe this sandbox ({problem}): nothing was stopped or "
                "removed; the sandbox acts as root only on the names it makes. If the file is damaged, "
                "move it away and run 'deploy sandbox down' again (it finds this sandbox's leftovers by "
                "name)",
                code=2,
            )
        return _State(**data)

    def _state_problem(self, data: object) -> str | None:
        """What in a state file's data is not this sandbox's (each name: its pattern and tag), or None."""
        if not isinstance(data, dict):
            return "not a JSON object"
        unknown = sorted(set(data) - set(_State.__dataclass_fields__))
        if unknown:
            return f"unknown key {unknown[0]!r}"
        if data.get("version") != STATE_VERSION or data.get("status") not in ("starting", "up"):
            return f"version {data.get('version')!r}, status {data.get('status')!r}"
        if not isinstance(data.get("rootfs", ""), str) or not isinstance(data.get("hosts", []), list):
            return "rootfs or hosts of the wrong type"
        names: set[str] = set()
        for number, host in enumerate(data.get("hosts", [])):
            problem = self._host_problem(host)
            if problem is not None:
                return f"hosts[{number}].{problem}"
            if host["name"] in names:
                return f"hosts[{number}].name {host['name']!r} appears twice"
            names.add(host["name"])
        acme = data.get("acme")
        if acme is not None:
            if not isinstance(acme, dict) or set(acme) - set(sandbox_acme.AcmeServer.__dataclass_fields__):
                return "acme is not an ACME server's record"
            if acme.get("workdir") != str(self.acme_dir):
                return f"acme.workdir is {acme.get('workdir')!r}, not {str(self.acme_dir)!r}"
            pids = acme.get("pids", [])
            if not isinstance(pids, list) or not all(_is_pid(p) for p in pids):
                return "acme.pids holds something other than process ids"
            if not all(isinstance(acme.get(k), str) for k in ("listen", "default_address")):
                return "acme.listen or acme.default_address is not text"
        return None

    def _host_problem(self, host: object) -> str | None:
        """What in one host's record is not this sandbox's (names made from its tag), or None."""
        fields = SandboxHost.__dataclass_fields__
        if not isinstance(host, dict):
            return "* is not a JSON object"
        unknown = sorted(set(host) - set(fields))
        if unknown:
            return f"{unknown[0]} is not a host's key"
        name = host.get("name")
        match = _HOST_NAME.fullmatch(name) if isinstance(name, str) else None
        if match is None:
            return f"name is {name!r}, not sandbox-N"
        expected: dict[str, object] = {
            "netns": f"deploy-{self.tag}-{name}",
            "veth": f"dsb{self.tag}-{match.group(1)}",
            "machine_dir": str(self.machines_dir / match.group(0)),
            "key": str(self.key),
            "known_hosts": str(self.known_hosts),
            "environment_file": str(self.environment_file),
            "user": SSH_USER,
            "port": 22,
        }
        for key, value in expected.items():
            if host.get(key, fields[key].default) != value:
                return f"{key} is {host.get(key)!r}, not this sandbox's {value!r}"
        if host.get("mode") not in ("overlay", "copy"):
            return f"mode is {host.get('mode')!r}, not overlay or copy"
        for key in ("address", "gateway"):
            try:
                ipaddress.IPv4Address(host.get(key))
            except (ipaddress.AddressValueError, ValueError, TypeError):
                return f"{key} is {host.get(key)!r}, not an IPv4 address"
        if host.get("pid") is not None and not _is_pid(host.get("pid")):
            return f"pid is {host.get('pid')!r}, not a process id"
        return None

    def _write_state(self, state: _State) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.state_file)

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
            host = self._start(host)
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
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-sandbox", "-f", str(self.key)])
        # One lock for every sandbox on this machine: two `up`s must not pick the same free network.
        with locked(NETWORK_LOCK):
            networks = self._free_networks(count)
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
            state = _State(rootfs=str(rootfs), hosts=[asdict(h) for h in hosts])
            self._write_state(state)  # before anything exists, so that a killed `up` can be undone
            for host in hosts:
                self._make_network(host)
            self._join_hosts()

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
            _run(["ip", "-n", host.netns, "route", "replace", f"{first.gateway}/32", "via", host.gateway])

        def start() -> None:
            try:
                result.append(sandbox_acme.start(self.acme_dir, first.gateway, first.address))
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        return thread

    def _boot(
        self, hosts: list[SandboxHost], state: _State, rootfs: Path, started: float, timeout: float
    ) -> list[SandboxHost]:
        """Prepare each host's root, start it, and wait until every one has booted."""
        hosts = list(hosts)
        known_lines = []
        hosts_lines = [f"{h.address}\t{h.name}" for h in hosts]
        for number, host in enumerate(hosts):
            host = self._prepare_machine(host, rootfs)
            known_lines.append(f"{host.name},{host.address} {self._host_key(host)}")
            self._write_host_identity(host, hosts_lines)
            host = self._start(host)
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

    def _free_networks(self, count: int) -> list[ipaddress.IPv4Network]:
        """`count` /24 networks inside the configured range that overlap no route or address here."""
        used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
        for route in routes:
            dst = route.get("dst", "")
            if dst and dst != "default" and route.get("type", "unicast") in ("unicast", "local"):
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.ip_network(dst, strict=False))
        for link in json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
            for addr in link.get("addr_info", []):
                with contextlib.suppress(ValueError, KeyError):
                    used.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
        if not isinstance(self.subnet, ipaddress.IPv4Network) or self.subnet.prefixlen > 24:
            raise SandboxError(
                f"sandbox subnet must be an IPv4 range of /24 or larger, got {self.subnet}", code=2
            )
        free = []
        for candidate in list(self.subnet.subnets(new_prefix=24))[1:]:
            if not any(candidate.overlaps(u) for u in used if u.version == 4):
                free.append(candidate)
                if len(free) == count:
                    return free
        raise SandboxError(
            f"only {len(free)} free /24 networks in {self.subnet} for {count} hosts; "
            "choose another range with DEPLOY_SANDBOX_SUBNET",
            code=2,
        )

    def _prepare_machine(self, host: SandboxHost, rootfs: Path) -> SandboxHost:
        """Give the host its own root: an overlay on the cached root filesystem, else a copy."""
        machine = Path(host.machine_dir)
        root = machine / "root"
        for sub in ("upper", "work", "root"):
            (machine / sub).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={rootfs},upperdir={machine / 'upper'},workdir={machine / 'work'}"
        if not self.copy and not any(c in str(path) for path in (rootfs, machine) for c in ",:"):
            result = subprocess.run(
                ["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                return host
            self.say(
                f"host {host.name}: overlay not possible here ({result.stderr.strip()}); copying instead"
            )
        root.rmdir()
        _run(["cp", "-a", "--reflink=auto", str(rootfs), str(root)])
        return SandboxHost(**{**asdict(host), "mode": "copy"})

    def _host_key(self, host: SandboxHost) -> str:
        """Generate the host's SSH key pair into its root; return the public key line."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "key"
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(path)])
            public = path.with_suffix(".pub").read_text(encoding="utf-8").strip()
            write_inside(host.root, "etc/ssh/ssh_host_ed25519_key", path.read_text(encoding="utf-8"), 0o600)
            write_inside(host.root, "etc/ssh/ssh_host_ed25519_key.pub", public + "\n", 0o644)
        key_type, key_data = public.split()[:2]
        return f"{key_type} {key_data}"

    def _write_host_identity(self, host: SandboxHost, hosts_lines: list[str]) -> None:
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
        public = self.key.with_suffix(".pub").read_text(encoding="utf-8")
        write_inside(root, "root/.ssh/authorized_keys", public, 0o600, dir_mode=0o700)

    def _make_network(self, host: SandboxHost) -> None:
        """A network namespace with eth0 and lo up, joined to this machine by a veth pair."""
        _run(["ip", "netns", "add", host.netns])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
        _run(["ip", "addr", "add", f"{host.gateway}/24", "dev", host.veth])
        _run(["ip", "link", "set", host.veth, "up"])
        _run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        _run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        # The other hosts of this sandbox are reached through this machine (see _join_hosts).
        _run(["ip", "-n", host.netns, "route", "add", str(self.subnet), "via", host.gateway])

    @property
    def _forward_rule(self) -> list[str]:
        """The firewall rule that lets this sandbox's hosts, and only them, reach each other."""
        links = f"dsb{self.tag}-+"
        return ["FORWARD", "-i", links, "-o", links, "-j", "ACCEPT"]

    def _join_hosts(self) -> None:
        """Let the hosts reach each other as servers on one private network do: forwarding on this
        machine, and a rule accepting traffic between this sandbox's links (Docker, for one, drops
        forwarded traffic by default). Hosts of other sandboxes stay out."""
        forward = Path("/proc/sys/net/ipv4/ip_forward")
        if forward.read_text(encoding="ascii").strip() != "1":
            forward.write_text("1\n", encoding="ascii")
            self.say("this machine: IPv4 forwarding turned on (sandbox hosts reach each other through it)")
        if shutil.which("iptables") is None:
            return
        rule = self._forward_rule
        if subprocess.run(["iptables", "-C", *rule], capture_output=True, check=False).returncode != 0:
            _run(["iptables", "-I", *rule])

    def _unjoin_hosts(self) -> None:
        if shutil.which("iptables") is None:
            return
        for _ in range(100):
            if subprocess.run(
                ["iptables", "-D", *self._forward_rule], capture_output=True, check=False
            ).returncode:
                break

    def _firewall_rules(self) -> list[str]:
        if shutil.which("iptables") is None:
            return []
        present = subprocess.run(["iptables", "-C", *self._forward_rule], capture_output=True, check=False)
        return [" ".join(self._forward_rule)] if present.returncode == 0 else []

    def _start(self, host: SandboxHost) -> SandboxHost:
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
        for root in _cgroup_roots():
            group = root / self._cgroup_name / host.name
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
        self.say(f"host {host.name}: starting at {host.address} (pid {process.pid}, {host.mode})")
        return SandboxHost(**{**asdict(host), "pid": process.pid})

    def _wait_booted(self, host: SandboxHost, started: float, timeout: float) -> None:
        deadline = started + timeout
        while True:
            if host.pid not in self._nspawn_processes():
                raise SandboxError(
                    f"systemd-nspawn exited during boot; its console:\n{self._console_tail(host)}"
                )
            with contextlib.suppress(OSError), socket.create_connection((host.address, host.port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"SSH did not answer on {host.address}:{host.port} within {timeout:.0f}s; "
                    f"its console:\n{self._console_tail(host)}"
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

    def _console_tail(self, host: SandboxHost, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (Path(host.machine_dir) / "console.log").read_text(encoding="utf-8", errors="replace")
            return "\n".join("  " + line for line in text.splitlines()[-lines:])
        return "  (no console output)"

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
            self.say("sandbox: nothing to remove")
            return
        self._claim()
        with locked(self.state_dir / ".lock"):
            self._teardown(timeout=timeout)
            left = self.leftovers()
            if left:
                raise SandboxError("could not remove: " + "; ".join(left))
            self._remove_files()
        with contextlib.suppress(OSError):
            (self.state_dir / ".lock").unlink()
            (self.state_dir / MARKER).unlink()
            self.state_dir.rmdir()
        self.say("sandbox down: nothing left behind")

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
                _signal(pid, signal.SIGTERM)
            gone = _wait_gone(pids, timeout)
            if not gone:
                still = sorted(p for p in pids if _alive(p))
                say(f"killing pids {', '.join(map(str, still))} after {timeout:.0f}s")
                for pid in still:
                    _signal(pid, signal.SIGKILL)
                _wait_gone(set(still), 10)
        stray_pids = self._cgroup_processes()
        for pid in stray_pids:
            _signal(pid, signal.SIGKILL)
        _wait_gone(set(stray_pids), 10)
        for group in self._cgroups():
            for path in sorted(
                (p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                group.rmdir()
        for netns in sorted({h.netns for h in known} | set(self._netns())):
            if not Path("/run/netns", netns).exists():
                continue
            inside = subprocess.run(
                ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
            )
            stray = [int(p) for p in inside.stdout.split() if p.isdigit()]
            for pid in stray:
                _signal(pid, signal.SIGKILL)
            _wait_gone(set(stray), 10)
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        for veth in sorted({h.veth for h in known} | set(self._links())):
            if Path("/sys/class/net", veth).exists():
                subprocess.run(["ip", "link", "delete", veth], capture_output=True, check=False)
        self._unjoin_hosts()
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
        out += [f"network namespace {n}" for n in self._netns()]
        out += [f"link {link}" for link in self._links()]
        out += [f"firewall rule {rule}" for rule in self._firewall_rules()]
        out += [f"mount {m}" for m in self._mounts()]
        if self.machines_dir.exists():
            out.append(f"directory {self.machines_dir}")
        return out

    def _nspawn_processes(self) -> list[int]:
        """systemd-nspawn processes booting a root under this sandbox's machines directory."""
        marker = f"--directory={self.machines_dir}/"
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
                _reap(int(entry.name))
                continue
            if (
                argv
                and argv[0].endswith(b"systemd-nspawn")
                and any(a.decode(errors="replace").startswith(marker) for a in argv)
            ):
                found.append(int(entry.name))
        return found

    def _cgroups(self) -> list[Path]:
        return [root / self._cgroup_name for root in _cgroup_roots() if (root / self._cgroup_name).is_dir()]

    def _cgroup_processes(self) -> list[int]:
        """Every process in this sandbox's cgroups: the hosts' systemds and everything they started."""
        found: set[int] = set()
        for group in self._cgroups():
            for procs in group.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split() if p.isdigit())
        return sorted(found)

    def _netns(self) -> list[str]:
        prefix = f"deploy-{self.tag}-"
        try:
            return sorted(p.name for p in Path("/run/netns").iterdir() if p.name.startswith(prefix))
        except FileNotFoundError:
            return []

    def _links(self) -> list[str]:
        prefix = f"dsb{self.tag}-"
        return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))

    def _mounts(self) -> list[str]:
        """Mount points under the machines directory or on this sandbox's /run/netns entries."""
        prefixes = (f"{self.machines_dir}/", f"/run/netns/deploy-{self.tag}-")
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = _unescape(line.split()[4])
            if point.startswith(prefixes) or point == str(self.machines_dir):
                found.append(point)
        return found


def environment_text(
    hosts: Sequence[SandboxHost],
    key: Path,
    known_hosts: Path,
    acme: sandbox_acme.AcmeServer | None,
) -> str:
    """The overlay `-e sandbox` lays over deploy.yaml: the hosts, SSH settings, and the ACME server.

    The `acme` section is not a deploy.yaml key: the loader moves it into `server.tls` only when the
    effective tls is ACME (`email`), so `tls: false` and an own cert and key stay as they are.
    """
    environment = {
        "server": {
            "hosts": [h.address for h in hosts],
            # Every SSH setting that could lead elsewhere is set: a deploy.yaml's own port or
            # jump host must not apply to the sandbox.
            "ssh": {
                "user": SSH_USER,
                "port": 22,
                "key": str(key),
                "known_hosts": str(known_hosts),
                "proxy_jump": None,
            },
        },
        "acme": sandbox_acme.overlay_section(acme),
    }
    if acme is not None:
        about = (
            f"# acme: tls: {{email: ...}} gets its certificates from pebble, a local ACME server at\n"
            f"# {acme.directory} (every name resolves to {acme.default_address} for it); its issuing\n"
            f"# root is {acme.root_file}.\n"
            "# tls: false and your own cert and key stay as they are.\n"
        )
    else:
        about = (
            "# acme: false: no ACME server in this sandbox (pebble not installed, or --no-acme), so\n"
            "# tls: {email: ...} becomes tls: false here (plain HTTP, no certbot). Own certs stay.\n"
        )
    return (
        "# Written by 'deploy sandbox up' for '-e sandbox'; 'deploy sandbox down' removes it.\n"
        + "# Hosts: "
        + ", ".join(f"{h.name}={h.address}" for h in hosts)
        + "\n"
        + about
        + yaml.safe_dump(environment, sort_keys=False)
    )


def _cgroup_roots() -> list[Path]:
    """The cgroup hierarchies systemd uses: the unified (v2) one and the v1 name=systemd one."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
            roots.append(Path(_unescape(fields[4])))
    return roots


def _unescape(text: str) -> str:
    """Undo the octal escapes of /proc/self/mountinfo (\\040 for a space)."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{shlex.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _is_pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**22


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect a child of this process that has exited (up and down in one process, as in tests)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _wait_gone(pids: set[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
