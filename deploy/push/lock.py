"""The deploy lock's side of a push: the step guard every command of a locked host runs under."""

from __future__ import annotations

from dataclasses import dataclass

from deploy.config.model import Config
from deploy.layout import Layout, layout_for
from deploy.remote.commands import LOST_LOCK, guarded


@dataclass(frozen=True)
class StepGuard:
    """Runs a command only while holder `holder_pid` holds the host's lock, and never orphaned
    (commands.guarded); an executor that takes the lock needs one (remote.executor.StepGuard)."""

    layout: Layout
    lost_code: int = LOST_LOCK

    def __call__(self, holder_pid: int, step: str, argv: tuple[str, ...]) -> tuple[str, ...]:
        return guarded(self.layout, holder_pid, step, argv)


def step_guard(config: Config) -> StepGuard:
    """The step guard of `config`'s app."""
    return StepGuard(layout_for(config))
