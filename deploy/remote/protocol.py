"""What running plans on hosts looks like to the rest of deploy: the Executor protocol, its results
and events, and how hosts are named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deploy.config.model import Host
from deploy.plan import Command, Step


class ConnectError(Exception):
    """A host cannot be reached or authenticated, or its host key is unknown or changed."""


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step on one host."""

    host: str
    step: str
    ok: bool
    seconds: float
    output: str = ""
    #: The command that failed (its description and quoted line), if any.
    failed: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class Event:
    """A progress event: a step started or ended on a host (the --json output is these, one a line)."""

    event: str
    host: str
    step: str
    status: str
    seconds: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "event": self.event,
            "host": self.host,
            "step": self.step,
            "status": self.status,
        }
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 3)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class LockResult:
    """The answer of a host to "take the deploy lock"."""

    host: str
    acquired: bool
    #: The record of the push that holds it (when not acquired), or of an interrupted push that left
    #: it behind (when acquired over a stale record).
    record: str | None = None
    #: Not acquired because a step of an earlier push still runs on the host (its holder was ended
    #: by `deploy lock release`): the step's name.
    still_running: str | None = None
    #: The work file's stamp just before the holder emptied it (lock_holder.sh), to tell whether facts
    #: gathered meanwhile still hold; and whether the holder first waited (for a holder or a step).
    stamp: str | None = None
    waited: bool = False


EventSink = Callable[[Event], None]


class StepGuard(Protocol):
    """Wraps each command of a host that holds the deploy lock so it runs only while the lock is held
    (deploy.push.lock.StepGuard); the executor knows nothing of the lock's protocol beyond this."""

    @property
    def lost_code(self) -> int:
        """The exit code of a command the guard refused to run (the lock was lost)."""

    def __call__(self, holder_pid: int, step: str, argv: tuple[str, ...]) -> tuple[str, ...]: ...


class Executor(Protocol):
    """What plans need from hosts; `SSHExecutor` does it over SSH, `Recorder` only records."""

    def gather(self, host: str, command: Command) -> str: ...

    def run_step(self, host: str, step: Step) -> StepResult: ...

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]: ...

    def acquire_lock(self, host: str, command: Command) -> LockResult: ...

    def release_lock(self, host: str) -> None: ...

    def stream(self, host: str, command: Command, sink: Callable[[str], None]) -> int: ...

    def close(self) -> None: ...


def host_name(host: Host) -> str:
    """How a host is named in plans and output: its address, with the port when not the default."""
    return host.name
