"""What the push orchestration needs of the command that runs it: where progress goes, how it stops.

The CLI's printer (deploy.cli.common.Printer) is one; push/ never imports the CLI."""

from __future__ import annotations

from typing import NoReturn, Protocol

from deploy.plan import Step
from deploy.push.rollout import Interrupted


class Console(Protocol):
    """Progress as text or JSON events, and the command's end (an error, or an exit code)."""

    as_json: bool
    #: push.lock_wait of the config in use, once the locks are being taken.
    lock_wait: int | None

    def say(self, message: str, **fields: object) -> None: ...

    def result(self, payload: dict[str, object], text: str) -> None: ...

    def fail(self, message: str, code: int = 1) -> NoReturn:
        """The command ends: `message` as its error, exit `code`."""
        ...

    def exit(self, code: int) -> NoReturn: ...

    def show(self, steps: list[Step], title: str) -> None:
        """The steps a dry run would run, under `title`."""
        ...


class Stops(Protocol):
    """The signals that stop a command (deploy.cli.common.StopSignals)."""

    def defer(self) -> None: ...

    @property
    def deferred(self) -> Interrupted | None: ...
