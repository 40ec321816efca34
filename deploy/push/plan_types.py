"""What the plans of setup, push and rollback are made of, and what they share: the plan of a push
or rollback over several hosts (`PushPlan`, one `HostPush` a host, phase by phase), the inputs a push
brings from this machine (`Build`), and `PlanError`.

The plans are pure functions from config, host state and artifact to steps (deploy.push.plan_setup,
plan_push, plan_rollback, plan_switch); nothing there touches a host. The executor runs the steps;
`deploy.push.rollout` decides the order (prepare every host, release commands on one, then start, probe
and switch host by host or batch by batch). Everything before a switch only touches the idle slot and
the new release directory, so a push that dies at any point leaves each host serving what it served
before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deploy.plan import Command, Plan, Step
from deploy.push.artifact import Artifact, Platform
from deploy.remote.facts import HostState

#: Seconds between switching `live.sock` and stopping the old slot, so connections Nginx opened
#: just before the switch are accepted by the old Gunicorn before it stops accepting.
DRAIN_SECONDS = 1.0


#: The deploy lock's lease: without a heartbeat for this long, the holder ends and the lock frees.
LOCK_LEASE_SECONDS = 60


class PlanError(Exception):
    """A plan cannot be made for a host (not set up, release not found); the message says what to do."""


@dataclass(frozen=True)
class HostPush:
    """Everything one host does in a push or rollback, phase by phase."""

    host: str
    release: str
    previous: str | None
    old_slot: str | None
    new_slot: str
    #: The host already serves exactly this build and config: nothing to do.
    unchanged: bool = False
    prepare: tuple[Step, ...] = ()
    start: tuple[Step, ...] = ()
    switch: tuple[Step, ...] = ()
    finish: tuple[Step, ...] = ()
    #: After a failure on a host that has not switched: stop the new slot.
    abort: tuple[Step, ...] = ()
    #: After a failure elsewhere, on a host that switched: back to the previous release.
    revert: tuple[Step, ...] = ()
    #: Read when the host fails to start the new slot: its log since it started (see deploy.push.applog).
    diagnose: Command | None = None
    files_sent: int = 0
    files_deleted: int = 0
    wheels_sent: int = 0
    venv_reused: bool = True


@dataclass(frozen=True)
class PushPlan:
    """A push or rollback over several hosts; `release_steps` run once, on the first host."""

    action: str
    release: str
    hosts: tuple[HostPush, ...]
    release_steps: tuple[Step, ...] = ()
    #: What the plan does not do that the user may expect (printed before it runs, and by --dry-run).
    notes: tuple[str, ...] = ()

    @property
    def changed_hosts(self) -> tuple[HostPush, ...]:
        return tuple(h for h in self.hosts if not h.unchanged)

    def as_plan(self) -> Plan:
        """Every step in the order a single-batch run takes them (for --dry-run and tests)."""
        steps: list[Step] = []
        for h in self.changed_hosts:
            steps += h.prepare
        steps += self.release_steps
        for phase in ("start", "switch", "finish"):
            for h in self.changed_hosts:
                steps += getattr(h, phase)
        return Plan(tuple(steps))


@dataclass(frozen=True)
class Build:
    """The inputs of a push that come from this machine: artifact, release id and wheels per host."""

    artifact: Artifact
    release: str
    #: Wheel file name -> content, per host.
    wheels: Mapping[str, Mapping[str, bytes]]
    who: str
    environment: str
    #: The project's identity (its git root commits, see `project_identity`); None: not checked.
    project_id: str | None = None
    #: What fills new venvs on the hosts (push.installer).
    installer: str = "pip"
    #: With installer uv: per host, the uv wheel's file name (shipped among the wheels), its sha256
    #: and the uv program's path inside it.
    uv: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)


def platform_tag(state: HostState) -> str:
    return Platform(
        state.python_version or "", state.machine or "", state.libc or "", state.libc_version or ""
    ).tag
