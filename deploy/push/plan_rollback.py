"""The rollback plan (pure: config and host state to steps): each host back to the release before its
current one (or a named one), with the same start, health gate and switch as a push."""

from __future__ import annotations

from collections.abc import Mapping

from deploy.config.model import Config
from deploy.layout import (
    layout_for,
)
from deploy.plan import Action, Command
from deploy.push import processes
from deploy.push.plan_setup import require_setup
from deploy.push.plan_switch import (
    _abort_steps,
    _finish_steps,
    _for_roles,
    _revert_steps,
    _served_marker,
    _start_steps,
    _switch_step,
    rollback_target,
)
from deploy.push.plan_types import HostPush, PlanError, PushPlan
from deploy.push.removals import not_brought_back, removal_steps
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState


def host_rollback(config: Config, state: HostState, target: str | None, restart: bool = False) -> HostPush:
    """One host back to `target` (default: the release before the current one), blue/green as a push.
    `restart`: the current release again, in the other slot (a new env file read, no downtime)."""
    require_setup(config, state)
    layout = layout_for(config)
    host = state.host
    current = state.current
    wanted = target or rollback_target(state)
    if wanted is None:
        raise PlanError(
            f"{host}: no earlier release to roll back to (releases: "
            f"{', '.join(state.complete_releases) or 'none'})"
        )
    if wanted not in state.complete_releases:
        raise PlanError(
            f"{host}: no complete release {wanted!r}; releases there: "
            f"{', '.join(state.complete_releases) or 'none'}"
        )
    old_slot = state.live_slot
    if wanted == current and not restart:
        return HostPush(host, wanted, current, old_slot, old_slot or "blue", unchanged=True)
    new_slot = cmd.other_slot(old_slot)
    found = next(r for r in state.releases if r.id == wanted)
    info = found.info or {}
    python_root = info.get("python_root")
    # A release that served keeps the record of what it replaced then; one that never served (named
    # explicitly) replaces the current one now.
    marker: Action = (
        Command(("touch", f"{layout.release(wanted)}/.deploy/served"), "mark as served", sudo=True)
        if found.served
        else _served_marker(layout, wanted, current)
    )
    push = HostPush(
        host=host,
        release=wanted,
        previous=current,
        old_slot=old_slot,
        new_slot=new_slot,
        start=(
            *_start_steps(
                config, layout, host, new_slot, wanted, python_root if isinstance(python_root, str) else None
            ),
            *processes.start_step(config, layout, host, old_slot, new_slot, wanted),
        ),
        switch=(
            _switch_step(
                layout, host, new_slot, wanted, marker, processes.at_boot(config, layout, host, new_slot)
            ),
        ),
        # deploy.yaml's processes, whatever the release ran: one it no longer has is removed, never
        # brought back (deploy.push.removals).
        finish=(
            *removal_steps(config, state, instances=False),
            *_finish_steps(config, layout, state, old_slot, None),
        ),
        abort=_abort_steps(config, layout, state, old_slot, new_slot),
        revert=_revert_steps(config, layout, state, old_slot, current, new_slot),
        diagnose=cmd.slot_log(layout, new_slot),
    )
    return _for_roles(config, layout, push)


def rollback_plan(config: Config, states: Mapping[str, HostState], target: str | None) -> PushPlan:
    hosts = tuple(host_rollback(config, state, target) for state in states.values())
    release = target or (hosts[0].release if hosts else "")
    notes = dict.fromkeys(
        note
        for host in hosts
        if not host.unchanged
        for note in [not_brought_back(config, states[host.host], host.release)]
        if note
    )
    return PushPlan("rollback", release, hosts, notes=tuple(notes))
