"""The order of a push or rollback over many hosts: prepare, release commands, batches, health gate.

Prepare runs on every host at once; release commands run once, on one host, before any host
switches; then each batch starts its new slot, passes the health gate and switches. When more hosts
fail than the threshold allows, every host that switched goes back to its previous release and every
host that had not switched stops its new slot. The rollout only decides; the executor runs.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from deploy.layout import Layout
from deploy.plan import Command, Step
from deploy.push.applog import excerpt
from deploy.push.plan_types import HostPush, PushPlan
from deploy.remote import commands as cmd
from deploy.remote.executor import Executor, StepResult, each


class Interrupted(KeyboardInterrupt):
    """A push or rollback stopped by a signal: Ctrl-C (SIGINT), a cancelled CI job (SIGTERM), a closed
    terminal (SIGHUP). A KeyboardInterrupt, so that every place that handles Ctrl-C handles them all."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        #: The exit code of a process ended by this signal, as shells report it.
        self.exit_code = 128 + signum

    @property
    def reason(self) -> str:
        return "interrupted by " + ("Ctrl-C" if self.name == "SIGINT" else self.name)


def interruption(exc: KeyboardInterrupt) -> Interrupted:
    """`exc` as an `Interrupted` (a plain KeyboardInterrupt is Ctrl-C)."""
    return exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)


class BatchError(ValueError):
    """A --batch value that is not a count or a percentage."""


def batches(hosts: list[str], batch: str | None) -> list[list[str]]:
    """Split hosts into rolling batches: None = all at once, "2" = two at a time, "25%" = a quarter."""
    if not hosts:
        return []
    if batch is None:
        return [hosts]
    text = batch.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            size = max(1, math.floor(len(hosts) * share / 100))
        else:
            size = int(text)
            if size < 1:
                raise ValueError
    except ValueError:
        raise BatchError(f"--batch expects a count such as 2 or a share such as 25%, got {batch!r}") from None
    return [hosts[i : i + size] for i in range(0, len(hosts), size)]


#: Steps whose failure reads the new slot's log: the app's traceback, or its last lines.
DIAGNOSED_STEPS = ("start", "health")


@dataclass(frozen=True)
class Failure:
    """Why a host failed: the step, the reason, and what the app's log says (see deploy.push.applog);
    for a release command, its output."""

    host: str
    step: str
    reason: str
    log: str = ""


@dataclass
class Outcome:
    """The result of a rollout."""

    action: str
    release: str
    switched: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: The push went ahead (all hosts, or failures within the threshold).
    completed: bool = False

    @property
    def ok(self) -> bool:
        return self.completed and not self.failures


Say = Callable[[str], None]


class Rollout:
    """Runs a `PushPlan` through an executor in the safe order."""

    def __init__(
        self,
        executor: Executor,
        plan: PushPlan,
        layout: Layout,
        *,
        batch: str | None = None,
        max_failures: int = 0,
        parallel: bool = True,
        say: Say | None = None,
    ):
        self.executor = executor
        self.plan = plan
        self.layout = layout
        self.batch = batch
        self.max_failures = max_failures
        self.parallel = parallel
        self.say = say or (lambda _message: None)
        self.by_host: dict[str, HostPush] = {h.host: h for h in plan.hosts}
        self.outcome = Outcome(
            plan.action, plan.release, unchanged=[h.host for h in plan.hosts if h.unchanged]
        )
        #: Hosts that switched, started their new slot, or are switching (the batch in flight).
        self._switched: list[str] = []
        self._started: list[str] = []
        self._switching: list[str] = []

    # helpers

    def _steps(self, host: str, steps: tuple[Step, ...]) -> StepResult | None:
        """Run steps in order on one host; the first failing result, or None."""
        for step in steps:
            result = self.executor.run_step(host, step)
            if not result.ok:
                return result
            for line in result.output.splitlines():
                if line.startswith("singleton: "):  # how long no instance of a singleton ran
                    self.say(f"{host}: {line}")
        return None

    def _phase(self, hosts: list[str], pick: Callable[[HostPush], tuple[Step, ...]]) -> dict[str, Failure]:
        results = each(hosts, lambda h: self._steps(h, pick(self.by_host[h])), self.parallel)
        failures: dict[str, Failure] = {}
        for host, result in results.items():
            if isinstance(result, BaseException):
                failures[host] = Failure(host, "connection", str(result))
            elif result is not None:
                failures[host] = Failure(host, result.step, _reason(result), "")
        return failures

    def _diagnose(self, failures: dict[str, Failure]) -> dict[str, Failure]:
        out: dict[str, Failure] = {}
        for host, failure in failures.items():
            push = self.by_host.get(host)
            log = ""
            if push is not None and push.diagnose is not None and failure.step in DIAGNOSED_STEPS:
                try:
                    _code, log = self.executor.run(host, push.diagnose, timeout=20)
                    log = excerpt(log)
                except Exception as exc:
                    log = f"(could not read the log: {exc})"
            out[host] = Failure(host, failure.step, failure.reason, log.strip())
        return out

    def _undo(self, switched: list[str], started: list[str]) -> None:
        """Back to the previous release on switched hosts; stop the new slot where it only started."""
        if switched:
            self.say(f"going back to the previous release on {', '.join(switched)}")
            back = self._phase(switched, lambda h: h.revert)
            for host in switched:
                if host not in back and host not in self.outcome.reverted:
                    self.outcome.reverted.append(host)
            for host, failure in back.items():
                push = self.by_host[host]
                where = (
                    f"could not go back to {push.previous}"
                    if push.previous
                    else "could not stop serving it (no earlier release)"
                )
                self.outcome.failures.append(
                    Failure(host, "revert", f"{where}; it may still serve {push.release}: {failure.reason}")
                )
        waiting = [h for h in started if h not in switched]
        if waiting:
            self._phase(waiting, lambda h: h.abort)

    # the run

    def run(self) -> Outcome:
        """Run the rollout. A signal (`Interrupted`, or a plain KeyboardInterrupt) is held back while
        steps run on hosts (`executor.SignalGate`, with StopSignals), so the steps in flight end
        first; the hosts are then put back (see `_interrupted`) and the interruption is raised again."""
        changed = [h.host for h in self.plan.changed_hosts]
        if not changed:
            self.outcome.completed = True
            return self.outcome
        try:
            self._run(changed)
        except KeyboardInterrupt as exc:
            self._interrupted(interruption(exc))
            raise
        return self.outcome

    def _interrupted(self, stop: Interrupted) -> None:
        """Every host back on one release: before the switch of the last batch, the one each served;
        once every host has switched, the new one (only the clean-up after the switch is left out)."""
        if self.outcome.completed:
            self.say(f"{stop.reason}: every host already switched to {self.plan.release}; it stays")
            return
        # A host of the batch that was switching may have switched (the step ran to its end): revert
        # puts it back as well, whereas stopping its new slot would stop the slot that serves.
        switched = self._switched + [h for h in self._switching if h not in self._switched]
        self.say(f"{stop.reason}: putting every host back on the release it served before")
        self.outcome.failures.append(Failure("(all)", "interrupted", stop.reason))
        self._undo(switched, self._started)

    def _run(self, changed: list[str]) -> None:
        failures = self._phase(changed, lambda h: h.prepare)
        if failures:
            self.outcome.failures += failures.values()
            return
        if self.plan.release_steps:
            first = self.plan.release_steps[0].host
            ran = each([first], lambda h: self._steps(h, self.plan.release_steps))[first]
            result = (
                StepResult(first, "release", False, 0.0, str(ran), "the connection", 255)
                if isinstance(ran, BaseException)
                else ran
            )
            if result is not None:
                # The command's own output (a lost connection's message is already the reason).
                log = result.output if result.failed != "the connection" else ""
                self.outcome.failures.append(Failure(first, "release", _reason(result), log))
                return
        switched, started = self._switched, self._started
        failed: dict[str, Failure] = {}
        for group in batches(changed, self.batch):
            started += group
            group_failures = self._diagnose(self._phase(group, lambda h: h.start))
            if group_failures:
                failed.update(group_failures)
                self._phase(list(group_failures), lambda h: h.abort)
            if len(failed) > self.max_failures:
                self.outcome.failures += failed.values()
                self._undo(switched, [h for h in started if h not in failed])
                return
            healthy = [h for h in group if h not in group_failures]
            self._switching = healthy
            switch_failures = self._phase(healthy, lambda h: h.switch)
            self._switching = []
            switched += [h for h in healthy if h not in switch_failures]
            if switch_failures:
                failed.update(switch_failures)
                switched += list(switch_failures)  # half-switched: revert puts them back too
                self.outcome.failures += failed.values()
                self._undo(switched, started)
                return
        self.outcome.failures += failed.values()
        self.outcome.switched = list(switched)
        self.outcome.completed = True
        finish = self._phase(switched, lambda h: h.finish)
        for host, failure in finish.items():
            self.say(f"{host}: cleanup after the switch failed ({failure.reason}); the new release serves")


def _reason(result: StepResult) -> str:
    output = result.output.strip()
    tail = "\n".join(output.splitlines()[-6:]) if output else ""
    what = result.failed or result.step
    return f"{what} (exit {result.exit_code})" + (f":\n{tail}" if tail else "")


def history_commands(
    layout: Layout, outcome: Outcome, plan: PushPlan, *, time: str, who: str, environment: str
) -> dict[str, Command]:
    """The audit-log line each changed host gets at the end of a push or rollback."""
    failed = {f.host: f for f in outcome.failures}
    out: dict[str, Command] = {}
    for push in plan.changed_hosts:
        host = push.host
        if host in outcome.switched and outcome.completed:
            result, reason = "ok", ""
        elif host in outcome.reverted:
            result, reason = "rolled back", _first_line(next(iter(failed.values())).reason) if failed else ""
        elif host in failed:
            result, reason = "failed", _first_line(failed[host].reason)
        else:
            result = "rolled back" if outcome.failures else "not started"
            reason = _first_line(outcome.failures[0].reason) if outcome.failures else ""
            reason = (f"{outcome.failures[0].host}: " + reason) if outcome.failures else reason
        entry: dict[str, object] = {
            "time": time,
            "by": who,
            "action": plan.action,
            "release": push.release,
            "previous": push.previous,
            "environment": environment,
            "result": result,
        }
        if reason:
            entry["reason"] = reason
        out[host] = cmd.history_entry(layout, entry)
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def hook_environment(
    plan: PushPlan, environment: str, app: str, result: str | None = None
) -> Mapping[str, str]:
    env = {
        "DEPLOY_ACTION": plan.action,
        "DEPLOY_RELEASE": plan.release,
        "DEPLOY_ENVIRONMENT": environment,
        "DEPLOY_HOSTS": " ".join(h.host for h in plan.hosts),
        "DEPLOY_APP": app,
    }
    if result is not None:
        env["DEPLOY_RESULT"] = result
    return env


def remote_hook(layout: Layout, run: str, env: Mapping[str, str]) -> Command:
    """A hook command on a host, run as root in the app's base directory with the hook environment."""
    return Command(
        ("env", "-C", layout.paths.base, *(f"{k}={v}" for k, v in sorted(env.items())), "sh", "-c", run),
        f"hook: {run}",
        sudo=True,
    )
