"""Run plans on hosts: the only module that speaks SSH (Fabric and Paramiko).

One SSH connection per host serves a whole push: facts, the deploy lock (a long-lived channel), every
step and every upload. A step's consecutive commands travel as one shell script on standard input
(one round trip), each command line quoted by `Command.line` and guarded so the first failure stops
the step and is named. Uploads stream their bytes on standard input (never on a command line), so
secrets never appear in a process list. The step script is built in deploy.remote.stepscript, host keys
and jump hosts are set up in deploy.remote.ssh; `Recorder` (deploy.remote.recorder) runs nothing and
records what would run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paramiko
from fabric import Config as FabricConfig  # type: ignore[import-untyped]
from fabric import Connection

from deploy.config.model import Config, Host
from deploy.plan import Command, Step, Upload
from deploy.remote.channels import SpareChannels, start
from deploy.remote.commands import write_stdin_argv

# The executor's public face: the rest of deploy imports these from here (they live in the modules
# named; deploy.remote.protocol and deploy.remote.recorder load no SSH library).
from deploy.remote.protocol import ConnectError as ConnectError
from deploy.remote.protocol import Event as Event
from deploy.remote.protocol import EventSink as EventSink
from deploy.remote.protocol import Executor as Executor
from deploy.remote.protocol import LockResult as LockResult
from deploy.remote.protocol import StepGuard as StepGuard
from deploy.remote.protocol import StepResult as StepResult
from deploy.remote.protocol import host_name as host_name
from deploy.remote.recorder import Recorder as Recorder
from deploy.remote.ssh import _policies
from deploy.remote.ssh import known_hosts_file as known_hosts_file
from deploy.remote.ssh import parse_jump as parse_jump
from deploy.remote.stepscript import _FAILED_LINE, _groups, send_all
from deploy.remote.stepscript import display_line as display_line
from deploy.remote.stepscript import step_script as step_script

T = TypeVar("T")


class SignalGate:
    """Holds back a signal that stops the command (`deploy.cli.push.StopSignals`) while `each` runs
    work on hosts from the main thread: the steps in flight end, no further host's work starts, and
    the interruption is raised when `each` returns. So a step is never cut off half-way on a host
    while the command undoes it. Used from the main thread only (where signal handlers run)."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: BaseException | None = None

    def hold(self, interruption: BaseException) -> bool:
        """Keep `interruption` for later if host work runs now (True), else leave it to the caller."""
        if self.depth == 0:
            return False
        self.pending = self.pending or interruption
        return True


GATE = SignalGate()


class NotStarted(Exception):
    """A host's work in `each` that did not start: the command was interrupted first."""


def each(
    hosts: Iterable[str], work: Callable[[str], T], parallel: bool = True
) -> dict[str, T | BaseException]:
    """Run `work` for every host (in threads when `parallel`); collect each result or exception.

    Called from the main thread, it holds back a signal that stops the command until the work
    running on hosts has ended (see `SignalGate`); work not started by then does not start.
    """
    names = list(hosts)
    results: dict[str, T | BaseException] = {}

    def one(name: str) -> None:
        if GATE.pending is not None:
            results[name] = NotStarted(f"{name}: not started (interrupted)")
            return
        try:
            results[name] = work(name)
        except Exception as exc:
            results[name] = exc

    main = threading.current_thread() is threading.main_thread()
    GATE.depth += main
    try:
        if not parallel or len(names) <= 1:
            for name in names:
                one(name)
        else:
            with ThreadPoolExecutor(max_workers=min(32, len(names))) as pool:
                list(pool.map(one, names))
    finally:
        GATE.depth -= main
        pending = GATE.pending if main and GATE.depth == 0 else None
        if pending is not None:
            GATE.pending = None
    if pending is not None:
        raise pending  # (an exception already on its way out of the block wins over it)
    return {name: results[name] for name in names}


@dataclass
class _Lock:
    channel: Any
    #: The holder's process id on the host (the step guard checks that it still runs).
    pid: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class SSHExecutor:
    """Runs commands, steps and uploads on hosts over one Fabric connection per host."""

    def __init__(
        self,
        config: Config,
        hosts: Iterable[Host],
        accept_new_host_keys: bool = False,
        on_event: EventSink | None = None,
        heartbeat: float = 10.0,
        step_guard: StepGuard | None = None,
    ):
        self.config = config
        self.hosts = {host_name(h): h for h in hosts}
        self.accept_new = accept_new_host_keys
        self.on_event = on_event or (lambda _event: None)
        self.heartbeat = heartbeat
        #: Needed to take the deploy lock: every command on a locked host then runs under it.
        self.step_guard = step_guard
        self.known_hosts = known_hosts_file(config)
        self._connections: dict[str, Connection] = {}
        self._locks: dict[str, _Lock] = {}
        self._guard = threading.Lock()
        self._channels = SpareChannels()
        self.sudo = config.server.ssh.user != "root" or config.server.ssh.sudo
        #: A step that has not finished after this many seconds fails (push.step_timeout).
        self.step_timeout: float = config.push.step_timeout
        # Paramiko logs failures of its transport thread with a traceback; ConnectError says it.
        quiet = logging.getLogger("paramiko")
        if not any(isinstance(h, logging.NullHandler) for h in quiet.handlers):
            quiet.addHandler(logging.NullHandler())

    # connections

    def _new_connection(self, address: str, user: str, port: int, jump: bool = True) -> Connection:
        ssh = self.config.server.ssh
        connect_kwargs: dict[str, object] = {}
        if ssh.key:
            key = os.path.expanduser(ssh.key)
            if not os.path.isfile(key):
                raise ConnectError(
                    f"{address}: server.ssh.key in deploy.yaml names {ssh.key}, but there is no such file"
                    + (f" ({key})" if key != ssh.key else "")
                    + "; correct the path, or remove the key to use the SSH agent"
                )
            connect_kwargs["key_filename"] = key
        gateway: Connection | None = None
        if ssh.proxy_jump and jump:
            jump_user, jump_address, jump_port = parse_jump(ssh.proxy_jump)
            # The bastion itself is reached directly (one hop), its host key checked like any other.
            gateway = self._new_connection(jump_address, jump_user or user, jump_port, jump=False)
        connection = Connection(
            host=address,
            user=user,
            port=port,
            connect_timeout=ssh.connect_timeout,
            connect_kwargs=connect_kwargs,
            gateway=gateway,
            config=FabricConfig(overrides={"load_ssh_configs": False}),
        )
        client = connection.client
        if self.known_hosts.exists():
            if not self.known_hosts.is_file():  # /dev/zero would be read forever
                raise ConnectError(f"server.ssh.known_hosts: {self.known_hosts} is not a regular file")
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(_policies(self.known_hosts, self.accept_new))
        return connection

    def connection(self, host: str) -> Connection:
        with self._guard:
            existing = self._connections.get(host)
        if existing is not None and existing.is_connected:
            return existing

        entry = self.hosts[host]
        ssh = self.config.server.ssh
        user = entry.user or ssh.user
        port = entry.port or ssh.port
        connection = self._new_connection(entry.address, user, port)
        try:
            if connection.gateway is None:
                # Our own socket, without Nagle's algorithm: each command is a small exchange, and
                # delayed ACKs would otherwise add ~40 ms to every one of them.
                sock = socket.create_connection(
                    (entry.address.strip("[]"), port), timeout=ssh.connect_timeout
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.connect_kwargs["sock"] = sock
            connection.open()
        except ConnectError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise ConnectError(
                f"{host}: HOST KEY CHANGED. The host offered {exc.key.get_name()} {exc.key.fingerprint}, but "
                f"{self.known_hosts} expects {exc.expected_key.fingerprint}. This can mean someone is "
                "intercepting the connection, or the host was reinstalled. Nothing was changed; if the "
                "change is expected, remove the old key (ssh-keygen -R) and connect again"
            ) from None
        except paramiko.AuthenticationException as exc:
            raise ConnectError(
                f"{host}: SSH authentication as {user} failed ({exc}); check server.ssh.key, "
                "the agent, and the host's authorized_keys"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectError(
                f"{host}: cannot connect to port {port}: {exc or type(exc).__name__}"
            ) from None
        transport = connection.client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        with self._guard:
            self._connections[host] = connection
        return connection

    def _wrap(self, argv: tuple[str, ...], sudo: bool) -> str:
        if sudo and self.sudo:
            argv = ("sudo", "-n", "--", *argv)
        return shlex.join(argv)

    def _exec(
        self,
        host: str,
        line: str,
        stdin: bytes | None = None,
        timeout: float | None = None,
        sink: Callable[[str], None] | None = None,
        late: str = "",
    ) -> tuple[int, str]:
        """Run `line`; past `timeout` seconds in all (not only of silence), ConnectError with `late`."""
        transport = self.connection(host).client.get_transport()
        if transport is None:
            raise ConnectError(f"{host}: the SSH connection closed")
        channel = self._channels.take(host, transport)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            channel.set_combine_stderr(True)
            if timeout is not None:
                channel.settimeout(timeout)
            start(channel, line)
            if stdin:
                try:
                    send_all(channel, stdin)
                except TimeoutError:
                    raise ConnectError(late or f"{host}: no answer within {timeout:g}s") from None
                except OSError:
                    # The command ended before it read all its input (e.g. it refused to write
                    # there): its output and exit status below say why.
                    pass
            if not channel.closed:
                channel.shutdown_write()
            chunks: list[bytes] = []
            while True:
                try:
                    if deadline is not None:
                        channel.settimeout(max(0.01, deadline - time.monotonic()))
                    data = channel.recv(65536)
                except TimeoutError:
                    raise ConnectError(late or f"{host}: no answer within {timeout:g}s") from None
                if not data:
                    break
                chunks.append(data)
                if sink is not None:
                    sink(data.decode("utf-8", "replace"))
            code = channel.recv_exit_status()
        finally:
            channel.close()
        return code, b"".join(chunks).decode("utf-8", "replace")

    # the Executor protocol

    def _sudo_problem(self, host: str, output: str) -> str | None:
        """The reason, when sudo refused to run without a password."""
        if not self.sudo or "a password is required" not in output:
            return None
        user = self.hosts[host].user or self.config.server.ssh.user
        return (
            f"{host}: {user} needs passwordless sudo (sudo -n asked for a password); allow it, e.g. "
            f"'{user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/{user}, or connect as root"
        )

    def gather(self, host: str, command: Command) -> str:
        code, output = self._exec(host, self._wrap(command.argv, command.sudo), timeout=60)
        if code != 0:
            problem = self._sudo_problem(host, output)
            tail = output.strip()[-500:]
            raise ConnectError(problem or f"{host}: gathering facts failed (exit {code}): {tail}")
        return output

    def _guarded(self, host: str, name: str, argv: tuple[str, ...], sudo: bool) -> str:
        """The command line of `argv`, under the step guard when this executor holds the host's lock."""
        with self._guard:
            held = self._locks.get(host)
        if held is None or not held.pid:
            return self._wrap(argv, sudo)
        assert self.step_guard is not None  # acquire_lock refuses to take a lock without one
        # The guard needs root (the lock's files): it runs under sudo, and so does the command.
        return self._wrap(self.step_guard(held.pid, name, argv), True)

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        line = self._guarded(host, command.description[:60], command.argv, command.sudo)
        return self._exec(host, line, timeout=timeout)

    def stream(self, host: str, command: Command, sink: Callable[[str], None]) -> int:
        code, _ = self._exec(host, self._wrap(command.argv, command.sudo), sink=sink)
        return code

    def _late(self, host: str, step: str) -> str:
        return (
            f"{host}: the {step} step did not finish within {self.step_timeout:g}s (push.step_timeout): "
            "the host stopped answering, or the step is slower than that (raise push.step_timeout). "
            "Whatever it started on the host finishes there before the deploy lock frees"
        )

    def run_step(self, host: str, step: Step) -> StepResult:
        started = time.monotonic()
        self.on_event(Event("step", host, step.name, "start"))
        outputs: list[str] = []
        result: StepResult | None = None
        try:
            for group in _groups(step):
                left = max(1.0, self.step_timeout - (time.monotonic() - started))
                if isinstance(group, Upload):
                    code, output = self._upload(host, group, step.name, left)
                    if code != 0:
                        result = StepResult(
                            host,
                            step.name,
                            False,
                            time.monotonic() - started,
                            output,
                            f"write {group.remote_path}",
                            code,
                        )
                        break
                    continue
                sudo = any(isinstance(c, Upload) or c.sudo for c in group)
                code, output = self._exec(
                    host,
                    self._guarded(host, step.name, ("sh", "-s"), sudo),
                    stdin=step_script(group).encode(),
                    timeout=left,
                    late=self._late(host, step.name),
                )
                match = _FAILED_LINE.search(output)
                clean = _FAILED_LINE.sub("", output).strip()
                if any(isinstance(c, Upload) and c.sensitive for c in group):
                    clean = "(output hidden: the step writes a secret file)" if clean else ""
                if clean:
                    outputs.append(clean)
                if code != 0:
                    failed = group[int(match.group(1))] if match else None
                    if isinstance(failed, Upload):
                        what = f"write {failed.remote_path}"
                    elif failed is None and self.step_guard is not None and code == self.step_guard.lost_code:
                        what = "the deploy lock"
                    else:
                        what = (
                            f"{failed.description}: {display_line(failed)}" if failed else "the step's script"
                        )
                    result = StepResult(
                        host, step.name, False, time.monotonic() - started, "\n".join(outputs), what, code
                    )
                    break
        except ConnectError as exc:
            result = StepResult(
                host, step.name, False, time.monotonic() - started, str(exc), "the connection", 255
            )
        if result is None:
            result = StepResult(host, step.name, True, time.monotonic() - started, "\n".join(outputs))
        self.on_event(
            Event(
                "step",
                host,
                step.name,
                "ok" if result.ok else "failed",
                result.seconds,
                "" if result.ok else (result.failed or ""),
            )
        )
        return result

    def _upload(self, host: str, upload: Upload, step: str, timeout: float) -> tuple[int, str]:
        argv = write_stdin_argv(
            upload.remote_path,
            upload.mode,
            upload.owner or "root",
            upload.group or "root",
            hashlib.sha256(upload.content).hexdigest(),
        )
        code, output = self._exec(
            host,
            self._guarded(host, step, argv, True),
            stdin=upload.content or b"",
            timeout=timeout,
            late=self._late(host, step),
        )
        if upload.sensitive:
            output = "(output hidden: sensitive file)"
        return code, output

    def acquire_lock(self, host: str, command: Command) -> LockResult:
        if self.step_guard is None:
            raise RuntimeError("an executor without a step guard cannot take the deploy lock")
        transport = self.connection(host).client.get_transport()
        if transport is None:
            raise ConnectError(f"{host}: the SSH connection closed")
        channel = self._channels.take(host, transport)
        channel.set_combine_stderr(True)
        start(channel, self._wrap(command.argv, command.sudo))
        reader = channel.makefile("r")
        stale: str | None = None
        stamp: str | None = None
        waited = False
        said: list[str] = []
        pid = 0
        while True:
            raw = reader.readline()
            line = raw.decode() if isinstance(raw, bytes) else raw
            if not line:
                rest = "\n".join(said[-5:])
                code = channel.recv_exit_status()
                channel.close()
                problem = self._sudo_problem(host, rest)
                failed = f"{host}: could not take the deploy lock (exit {code}) {rest}".strip()
                raise ConnectError(problem or failed)
            said.append(line.rstrip("\n"))
            line = line.rstrip("\n")
            if line.startswith("STALE "):
                stale = line[len("STALE ") :]
            elif line.startswith(("WAITING ", "WORKING ")):
                waited = True
                # An interrupted push's last step still runs there: the holder waits for it (bounded).
                kind, _, detail = line.partition(" ")
                self.on_event(Event("lock", host, "lock", kind.lower(), detail=detail))
            elif line.startswith("STILLWORKING "):
                channel.recv_exit_status()
                channel.close()
                return LockResult(host, False, None, still_running=line.partition(" ")[2])
            elif line.startswith("LOCKED"):
                # LOCKED <holder pid> [<the work file's stamp>]
                _, word, stamp = [*line.split(maxsplit=2), "", ""][:3]
                pid = int(word) if word.isdigit() else 0
                break
            elif line == "BUSY":
                record = "".join(r.decode() if isinstance(r, bytes) else r for r in reader.readlines())
                channel.recv_exit_status()
                channel.close()
                return LockResult(host, False, record.strip() or None)
        held = _Lock(channel, pid)

        def beat() -> None:
            while not held.stop.wait(self.heartbeat):
                try:
                    channel.sendall(b"beat\n")
                except (OSError, EOFError):
                    return

        held.thread = threading.Thread(target=beat, name=f"lock-heartbeat-{host}", daemon=True)
        held.thread.start()
        with self._guard:
            self._locks[host] = held
        return LockResult(host, True, stale, stamp=stamp or None, waited=waited)

    def release_lock(self, host: str) -> None:
        with self._guard:
            held = self._locks.pop(host, None)
        if held is None:
            return
        held.stop.set()
        try:
            held.channel.sendall(b"release\n")
            held.channel.shutdown_write()
            # The holder ends once no step of this push runs on the host any more; normally at once.
            # A step that outlived its timeout keeps the lock held there: do not wait for it.
            held.channel.status_event.wait(10)
        except (OSError, EOFError):
            pass
        finally:
            held.channel.close()

    def close(self) -> None:
        for host in list(self._locks):
            self.release_lock(host)
        self._channels.close()
        with self._guard:
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError, EOFError):
                connection.close()


def run_local(command: str, env: Mapping[str, str]) -> tuple[int, str]:
    """Run a local hook command (a shell line from deploy.yaml) with the hook environment."""
    # A hook is a shell line the user wrote in deploy.yaml.
    result = subprocess.run(  # noqa: S602
        command,
        shell=True,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr
