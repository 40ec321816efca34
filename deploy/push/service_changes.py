"""What `deploy setup` says and does around a change of the services: the downtime a service step
costs (before and after it), the app started again when the service URLs in its env file changed,
and the services deploy.yaml no longer has (still running, with their data). See deploy/push/upgrades.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deploy.layout import layout_for
from deploy.push.rollout import Rollout
from deploy.push.upgrades import (
    after,
    before,
    digest_command,
    leftovers,
    leftovers_command,
    removal_notes,
    restart_plan,
    urls_changed,
)
from deploy.remote.commands import remove_tree
from deploy.remote.executor import each

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.plan import Step
    from deploy.push.console import Console
    from deploy.remote.executor import Executor
    from deploy.remote.facts import HostState


class Downtime:
    """Says what a service step costs the app before it runs, and what it cost after."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.step: Step | None = None
        self.started = 0.0

    def say_before(self, step: Step, persistence: str | None = None) -> None:

        self.step, self.started = step, time.monotonic()
        note = before(step, persistence)
        if note:
            self.say(note)

    def say_planned(self, steps: Iterable[Step], persistence: str | None = None) -> None:
        """A dry run: what each planned service step would cost the app."""

        for step in steps:
            note = before(step, persistence)
            if note:
                self.say(f"dry run: {note}")

    def say_after(self, output: str) -> None:

        if self.step is None:
            return
        note = after(self.step, time.monotonic() - self.started, output)
        if note:
            self.say(note)


@dataclass
class ServiceChanges:
    """What the hosts held before setup wrote the env file: the digest of its service URLs, and the
    services set up there."""

    digests: dict[str, str] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def learn(cls, executor: Executor, config: Config, hosts: list[str]) -> ServiceChanges:

        digests = each(hosts, lambda h: executor.gather(h, digest_command(config)))
        listings = each(hosts, lambda h: executor.gather(h, leftovers_command(config)))
        return cls(
            {h: d for h, d in digests.items() if isinstance(d, str)},
            leftovers(config, {h: out for h, out in listings.items() if isinstance(out, str)}),
        )

    def say_removed(self, config: Config, say: Callable[[str], None]) -> None:

        for line in removal_notes(config, self.left):
            say(line)

    def owed(self, config: Config, secrets: Mapping[str, str], states: Mapping[str, HostState]) -> list[str]:
        """The hosts whose app must start again after setup: their env file holds (or held, before an
        earlier setup was interrupted) other service URLs, and they serve the app."""

        return [h for h in urls_changed(config, secrets, self.digests) if h in states and states[h].live_slot]

    @staticmethod
    def _restarted(
        executor: Executor, config: Config, hosts: Iterable[str], say: Callable[[str], None]
    ) -> None:
        """The app runs with the env file's URLs on `hosts`: setup no longer owes them a restart."""

        marker = layout_for(config).restart_pending
        done = each(list(hosts), lambda h: executor.run(h, remove_tree(marker, "the restart is done")))
        for host, result in done.items():
            if not isinstance(result, tuple) or result[0] != 0:
                say(f"{host}: could not remove {marker}: the next setup starts the app again once more")

    def restart(
        self,
        executor: Executor,
        config: Config,
        gather: Callable[[], Mapping[str, HostState]],
        secrets: Mapping[str, str],
        printer: Console,
        dry_run: bool = False,
    ) -> None:
        """Start the app again where the service URLs of its env file changed (a running app read the
        old ones when it started): the other slot, health-gated, then the switch, in batches."""

        say = printer.say
        if not urls_changed(config, secrets, self.digests):
            return
        # The hosts as setup left them (a host that serves nothing yet has nothing to start again).
        states = gather()
        hosts = self.owed(config, secrets, states)
        if not hosts:
            return
        if dry_run:
            say(
                f"then the app would start again on {', '.join(hosts)}: the service URLs in its env file "
                "change (the other slot, health-gated, then the switch: no downtime)"
            )
            return
        say(
            f"the service URLs in the app's env file changed on {', '.join(hosts)}: starting the app again "
            "there as a rollback switches (the other slot, health-gated, then the switch: no downtime)"
        )
        plan = restart_plan(config, states, hosts)
        rollout = Rollout(
            executor,
            plan,
            layout_for(config),
            batch=config.push.batch,
            max_failures=config.push.max_failures,
            say=say,
        )
        outcome = rollout.run()
        self._restarted(executor, config, outcome.switched, say)
        if not outcome.ok:
            reasons = "\n  ".join(f"{f.host}: {f.step} failed: {f.reason}" for f in outcome.failures)
            printer.fail(
                "setup is done, but the app did not start again with the new service URLs (it still runs "
                f"with the old ones):\n  {reasons}\n'deploy push' starts it with them",
                1,
            )
        say(f"the app runs with the new service URLs on {', '.join(outcome.switched)}")
