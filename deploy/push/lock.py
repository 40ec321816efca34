"""The deploy lock: taking it on every host, who holds it, and the step guard every command of a
locked host runs under."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass

from deploy.config.model import Config
from deploy.layout import Layout, layout_for
from deploy.push.console import Console
from deploy.push.plan_types import LOCK_LEASE_SECONDS
from deploy.remote.commands import LOST_LOCK, guarded, lock_holder
from deploy.remote.executor import Executor, LockResult, each, host_name


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


def who() -> str:
    """Who runs this command: user@machine (the lock's and the audit log's "by")."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def lock_record(record: str | None) -> str:
    """Who holds (or held) a lock, from its JSON record, in words."""
    if not record:
        return "an unknown holder"
    try:
        data = json.loads(record.strip().splitlines()[0])
    except (ValueError, IndexError):
        return record.strip()[:200]
    action = data.get("action", "push")
    what = "setup" if action == "setup" else f"{action} of release {data.get('release', '?')}"
    text = f"{data.get('by', '?')} (pid {data.get('pid', '?')}, {what}, since {data.get('since', '?')})"
    if data.get("draining"):
        text += (
            f", which was interrupted: its last step ({data['draining']}) is still finishing on the "
            "host, and the lock frees itself when it ends"
        )
    return text


def take_locks(
    executor: Executor,
    config: Config,
    printer: Console,
    action: str,
    release: str,
    create: bool = False,
) -> dict[str, LockResult]:
    """Take the deploy lock on every host (the first host first, alone), or release those taken and
    end the command saying who holds it. Returns each host's answer."""
    layout = layout_for(config)
    record: dict[str, object] = {
        "by": who(),
        "pid": os.getpid(),
        "since": now(),
        "action": action,
        "release": release,
        "lease_seconds": LOCK_LEASE_SECONDS,
    }
    printer.lock_wait = config.push.lock_wait
    command = lock_holder(layout, record, LOCK_LEASE_SECONDS, config.push.lock_wait, create)
    # The first host first, alone: of two concurrent pushes only one gets past it, so the loser never
    # holds a lock on another host that would make the winner fail too.
    names = [host_name(h) for h in config.server.hosts]
    results = each(names[:1], lambda h: executor.acquire_lock(h, command))
    first = results[names[0]]
    if not isinstance(first, BaseException) and first.acquired:
        results.update(each(names[1:], lambda h: executor.acquire_lock(h, command)))
    problems: list[str] = []
    for host, result in results.items():
        if isinstance(result, BaseException):
            text = str(result)
            if "exit 70" in text:
                text = f"{host}: cannot open the lock file {layout.lock_file}: run 'deploy setup' first"
            problems.append(text)
        elif result.still_running:
            problems.append(
                f"{host}: a step ({result.still_running}) of an earlier, interrupted push is still running "
                "on the host (its lock was released by hand); it did not end within "
                f"{config.push.lock_wait}s (push.lock_wait). Try again when it has finished, or wait "
                "longer with a higher push.lock_wait; see 'deploy lock status'"
            )
        elif not result.acquired:
            problems.append(
                f"{host}: the deploy lock is held by {lock_record(result.record)}; "
                "wait for it to finish, or see 'deploy lock status'"
            )
        elif result.record:
            printer.say(
                f"note: {host}: an earlier push did not finish: {lock_record(result.record)} was "
                "interrupted (its process ended without releasing the lock, which freed itself); "
                "taking the lock over. "
                + (
                    "The Redis restore on the host ran on to its end (Redis started again); the app it "
                    "stopped stays stopped until a restore or push starts it."
                    if '"action": "redis restore"' in result.record
                    else "The restore was one transaction (the database is whole); the app it stopped stays "
                    "stopped until a restore or push starts it."
                    if '"action": "restore"' in result.record
                    else "The host kept serving its live release."
                )
            )
    if problems:
        for host, result in results.items():
            if not isinstance(result, BaseException) and result.acquired:
                executor.release_lock(host)
        printer.fail("\n  ".join(["nothing was changed:", *problems]), 1)
    return {h: r for h, r in results.items() if isinstance(r, LockResult)}
