"""`Recorder`: an executor that runs nothing and records what would run (dry runs and tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from deploy.plan import Command, Step
from deploy.remote.protocol import Event, EventSink, LockResult, StepResult


class Recorder:
    """Runs nothing: records every step, command and upload, and answers facts from fixtures.

    Used by --dry-run (with facts gathered by a real executor) and by tests.
    """

    def __init__(
        self,
        facts: Mapping[str, str] | None = None,
        fail: Mapping[tuple[str, str], str] | None = None,
        on_event: EventSink | None = None,
    ):
        self.facts = dict(facts or {})
        #: (host, step name) -> output of a failure to simulate.
        self.fail = dict(fail or {})
        self.log: list[tuple[str, str, str]] = []
        self.locks: dict[str, bool] = {}
        self.on_event = on_event or (lambda _event: None)

    def gather(self, host: str, command: Command) -> str:
        return self.facts[host]

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        self.log.append((host, "run", command.line()))
        return 0, ""

    def stream(self, host: str, command: Command, sink: Callable[[str], None]) -> int:
        self.log.append((host, "stream", command.line()))
        return 0

    def run_step(self, host: str, step: Step) -> StepResult:
        self.on_event(Event("step", host, step.name, "start"))
        for action in step.actions:
            if isinstance(action, Command):
                self.log.append((host, step.name, action.line()))
            else:
                shown = "(secret)" if action.sensitive else f"{len(action.content)} bytes"
                self.log.append((host, step.name, f"write {action.remote_path} {action.mode:04o} {shown}"))
        failure = self.fail.get((host, step.name))
        ok = failure is None
        self.on_event(Event("step", host, step.name, "ok" if ok else "failed", 0.0))
        return StepResult(host, step.name, ok, 0.0, failure or "", None if ok else step.name, 0 if ok else 1)

    def acquire_lock(self, host: str, command: Command) -> LockResult:
        self.log.append((host, "lock", "take"))
        if self.locks.get(host):
            return LockResult(host, False, '{"by": "someone"}')
        self.locks[host] = True
        return LockResult(host, True)

    def release_lock(self, host: str) -> None:
        if self.locks.pop(host, None):
            self.log.append((host, "lock", "release"))

    def close(self) -> None:
        for host in list(self.locks):
            self.release_lock(host)

    def lines(self, host: str | None = None) -> list[str]:
        return [line for h, _step, line in self.log if host is None or h == host]
