"""Plans: what a push, rollback or setup will do, as plain data — built apart from running it.

A plan is an ordered list of steps; each step holds the exact commands and uploads for one host.
`--dry-run` prints it, tests compare it with fixtures, and the executor is the only code that runs it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """One remote command as an argument vector; quoted in exactly one place (`line`)."""

    argv: tuple[str, ...]
    description: str = ""
    sudo: bool = False
    #: A failing command fails the step unless `check` is False.
    check: bool = True

    def line(self) -> str:
        """The command line sent to the host: every argument quoted with shlex."""
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Upload:
    """A file written on the host atomically (temporary file, then rename)."""

    remote_path: str
    content: bytes
    mode: int = 0o644
    owner: str | None = None
    group: str | None = None
    #: Sensitive content (secrets) is never printed, logged or diffed.
    sensitive: bool = False
    description: str = ""


Action = Command | Upload


@dataclass(frozen=True)
class Step:
    """A named group of actions for one host, reported as one progress line."""

    name: str
    host: str
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Plan:
    """An ordered list of steps, possibly for several hosts."""

    steps: tuple[Step, ...] = field(default_factory=tuple)

    def for_host(self, host: str) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.host == host)

    @property
    def hosts(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for step in self.steps:
            seen.setdefault(step.host, None)
        return tuple(seen)
