"""The end of a push or rollback: its hooks around the rollout, the audit log on the hosts, the report
(and a non-zero exit when it failed or was stopped)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from deploy.config.model import Config
from deploy.config.redact import Redactor
from deploy.layout import layout_for
from deploy.push.applog import is_traceback
from deploy.push.console import Console, Stops
from deploy.push.hooks import run_hooks
from deploy.push.lock import now, who
from deploy.push.plan_types import PushPlan
from deploy.push.rollout import (
    DIAGNOSED_STEPS,
    Failure,
    Interrupted,
    Outcome,
    Rollout,
    history_commands,
    hook_environment,
    interruption,
)
from deploy.remote.executor import Executor, each, host_name
from deploy.remote.facts import parse_state, probe_command


@dataclass(frozen=True)
class RolloutRun:
    """How `finish` runs a push or rollback: its options, and what it keeps out of output."""

    environment: str
    started: float
    batch: str | None
    max_failures: int
    secrets: Mapping[str, str]
    stops: Stops
    verbose: bool = False


def finish(config: Config, executor: Executor, plan: PushPlan, printer: Console, run: RolloutRun) -> None:
    """Run the rollout with hooks, write the audit log, report, exit non-zero on failure.

    What a failure quotes from a host (a command's output, the app's log), and the audit log written
    on the hosts, show the values of `secrets` (and their encodings) by their names; everything
    printed goes through the same redaction (the CLI's `redacts_secrets`, around every command).
    """
    hooks = config.hooks.pre_push if plan.action == "push" else config.hooks.pre_rollback
    post = config.hooks.post_push if plan.action == "push" else config.hooks.post_rollback
    env = hook_environment(plan, run.environment, config.app.name)
    if run_hooks(config, executor, hooks, env, printer, f"pre-{plan.action}", run.verbose):
        printer.fail(f"a pre-{plan.action} hook failed: nothing was changed", 1)
    rollout = Rollout(
        executor, plan, layout_for(config), batch=run.batch, max_failures=run.max_failures, say=printer.say
    )
    stop: Interrupted | None = None
    try:
        outcome = rollout.run()
    except KeyboardInterrupt as exc:
        stop = interruption(exc)
        outcome = rollout.outcome
    run.stops.defer()
    _audit(config, executor, plan, outcome, run)
    result = "ok" if outcome.ok else "failed"
    hook_failures = run_hooks(
        config, executor, post, {**env, "DEPLOY_RESULT": result}, printer, f"post-{plan.action}", run.verbose
    )
    elapsed = time.monotonic() - run.started
    payload = _payload(plan, outcome, elapsed)
    stop = stop or run.stops.deferred
    if stop is not None:
        report_interrupted(executor, config, plan, printer, payload, stop)
    if hook_failures:
        payload["hook_failures"] = hook_failures
    if outcome.ok:
        _report_done(plan, outcome, printer, payload, hook_failures, elapsed)
        return
    lines = _failure_lines(config, plan, outcome, run)
    payload["message"] = "\n".join(lines)
    if printer.as_json:
        printer.result(payload, "")
        printer.exit(1)
    printer.fail(f"{plan.action} of {plan.release} failed ({elapsed:.2f}s):\n" + "\n".join(lines), 1)


def _audit(config: Config, executor: Executor, plan: PushPlan, outcome: Outcome, run: RolloutRun) -> None:
    """Redact the failures, then write the audit log on the hosts through the same redaction as
    everything printed."""
    redact = Redactor(run.secrets)
    outcome.failures = [Failure(f.host, f.step, redact(f.reason), redact(f.log)) for f in outcome.failures]
    entries = {
        host: replace(command, argv=tuple(redact(a) for a in command.argv))
        for host, command in history_commands(
            layout_for(config), outcome, plan, time=now(), who=who(), environment=run.environment
        ).items()
    }
    each(list(entries), lambda h: executor.run(h, entries[h], timeout=30))


def _payload(plan: PushPlan, outcome: Outcome, elapsed: float) -> dict[str, object]:
    return {
        "action": plan.action,
        "release": plan.release,
        "ok": outcome.ok,
        "seconds": round(elapsed, 3),
        "switched": outcome.switched,
        "reverted": outcome.reverted,
        "unchanged": outcome.unchanged,
        "failures": [
            {"host": f.host, "step": f.step, "reason": f.reason, "log": f.log} for f in outcome.failures
        ],
    }


def _report_done(
    plan: PushPlan,
    outcome: Outcome,
    printer: Console,
    payload: dict[str, object],
    hook_failures: list[str],
    elapsed: float,
) -> None:
    """A rollout that went through: say so; a failed post hook still fails the command."""
    verb = "is live on" if plan.action == "push" else "serves again on"
    done = f"release {plan.release} {verb} {', '.join(outcome.switched)} ({elapsed:.2f}s)"
    if not hook_failures:
        printer.result(payload, done)
        return
    # The release stays: the hook ran after the switch. The command still fails, and says why.
    payload["ok"] = False
    payload["message"] = f"{done}; the release stays, but a post-{plan.action} hook failed"
    printer.result(payload, str(payload["message"]))
    if printer.as_json:
        printer.exit(1)
    # Each failure was printed with its output above; the error names them again, one line each.
    named = [text.splitlines()[0] for text in hook_failures]
    printer.fail("\n".join([f"a post-{plan.action} hook failed (the release stays as it is):", *named]), 1)


def _failure_lines(config: Config, plan: PushPlan, outcome: Outcome, run: RolloutRun) -> list[str]:
    """What failed where (with the app's log), and what each host serves now."""
    lines = []
    for failure in outcome.failures:
        lines.append(f"{failure.host}: {failure.step} failed: {failure.reason}")
        if failure.log:
            shown = failure.log.splitlines()
            if failure.step in DIAGNOSED_STEPS and is_traceback(failure.log):
                title = "the app's traceback, from its log since the slot started"
            else:
                title = "last lines of the app's log"
                shown = shown[-15:]
            lines.append(f"  {title}:\n    " + "\n    ".join(shown))
    if outcome.completed:
        lines.append(
            f"release {plan.release} is live on {', '.join(outcome.switched)}; "
            f"{len(outcome.failures)} host(s) failed within the allowed {run.max_failures}"
        )
    else:
        # A host whose revert failed may still serve the new release: never said to be back.
        unknown = [f.host for f in outcome.failures if f.step == "revert"]
        back = ", ".join(h.host for h in plan.changed_hosts if h.host not in unknown)
        if back:
            lines.append(f"nothing switched for good: {back} serve(s) the previous release")
        option = f" -e {run.environment}" if config.environment else ""
        lines += [
            f"{host}: state unknown after the failed revert: see 'deploy status{option}'" for host in unknown
        ]
    return lines


def report_interrupted(
    executor: Executor,
    config: Config,
    plan: PushPlan,
    printer: Console,
    payload: dict[str, object],
    stop: Interrupted,
) -> None:
    """After a signal: what each host serves now (asked of the host), whether that is one release, exit."""
    command = probe_command(config)
    results = each(
        [host_name(h) for h in config.server.hosts],
        lambda h: parse_state(h, executor.gather(h, command)).current,
    )
    serving = {
        host: (f"unknown ({result})" if isinstance(result, BaseException) else result or "no release")
        for host, result in results.items()
    }
    before = {h.host: h.previous or "no release" for h in plan.hosts}
    lines = [f"{stop.reason}; each host now:"]
    for host, release in serving.items():
        if release == plan.release and before.get(host) != plan.release:
            what = f"serves {release} (the new release)"
        elif release == before.get(host):
            what = f"serves {release} (as before the {plan.action})"
        else:
            what = f"serves {release}"
        lines.append(f"  {host}: {what}")
    releases = set(serving.values())
    if len(releases) == 1 and not next(iter(releases)).startswith("unknown"):
        lines.append(f"every host serves one release: {next(iter(releases))}")
    else:
        lines.append("the hosts do NOT all serve one release: see above, then push or roll back again")
    payload.update({"interrupted": stop.name, "hosts": serving, "message": "\n".join(lines)})
    printer.result(payload, "\n".join(lines))
    printer.exit(stop.exit_code)
