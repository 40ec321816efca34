"""Processes a host no longer runs: those deploy.yaml no longer has (their units stop, leave the boot
and are removed) and, in setup, instances the host should not run in its live slot (its roles changed,
fewer instances). Pure: from config and host state, as deploy.push.jobs does for jobs.

A push and a rollback stop every instance of the slot they leave at their finish (deploy.push.processes
`stop_old`), so for them only the processes deploy.yaml dropped are left to remove, after the switch,
once every host serves the new release: a failed push leaves them running, as it leaves the jobs.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from deploy.config.model import Config
from deploy.layout import Layout, layout_for, process_boot_glob, process_template_glob
from deploy.plan import Action, Command, Step
from deploy.push.processes import unboot
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState

#: What the first line of a process unit template deploy renders says (templates/process.service.j2).
_RENDERED = re.compile(r"^# (?P<unit>\S+)@\.service, rendered by deploy: the process `(?P<name>[^`]+)`")


def removed(config: Config, state: HostState) -> list[str]:
    """The processes whose unit template deploy installed on the host and deploy.yaml no longer has."""
    out = []
    for path in state.globs.get(process_template_glob(config), []):
        match = _RENDERED.match(state.files.get(path) or "")
        name = match["name"] if match else None
        # Another app's unit (`shop-admin@.service` beside the app `shop`) says another unit name.
        if match and name and match["unit"] == f"{config.app.name}-{name}" and name not in config.processes:
            out.append(name)
    return sorted(out)


def _booted(config: Config, state: HostState) -> list[str]:
    """The process instances (unit names) that start at boot on the host."""
    return [PurePosixPath(p).name for p in state.globs.get(process_boot_glob(config), [])]


def extra_instances(config: Config, layout: Layout, state: HostState) -> list[str]:
    """Instances of deploy.yaml's processes that start at boot on the host but should not run there in
    its live slot: the process moved to other hosts (roles, `hosts:`) or has fewer `instances:`."""
    live = state.live_slot
    wanted = {
        layout.process_unit(name, live, index)
        for name in config.processes
        if live is not None and state.host in config.process_hosts(name)
        for index in range(1, config.processes[name].instances + 1)
    }
    ours = tuple(f"{config.app.name}-{name}@" for name in config.processes)
    return [unit for unit in _booted(config, state) if unit.startswith(ours) and unit not in wanted]


def removal_steps(config: Config, state: HostState, *, instances: bool) -> tuple[Step, ...]:
    """Stop (their warm shutdown: systemd waits up to each one's stop timeout), take out of the boot and
    remove the units of the processes deploy.yaml no longer has; with `instances` (setup), also stop the
    live slot's instances the host no longer runs. () when there is nothing to remove."""
    layout = layout_for(config)
    gone = removed(config, state)
    extra = extra_instances(config, layout, state) if instances else []
    if not gone and not extra:
        return ()
    actions: list[Action] = []
    if gone:
        patterns = [f"{config.app.name}-{name}@*.service" for name in gone]
        shown = ", ".join(gone)
        actions += [
            cmd.systemctl(
                "stop",
                *patterns,
                description=f"stop {shown} (no longer in deploy.yaml): the warm shutdown of every instance, "
                "up to its stop timeout",
                check=False,
            ),
            _forget_failures(patterns, shown),
            unboot(layout, patterns, f"{shown}: no instance starts at boot"),
            cmd.remove_paths(
                layout.unit_dir,
                [f"{config.app.name}-{name}@.service" for name in gone],
                f"remove the unit templates of {shown}",
            ),
            cmd.daemon_reload(),
        ]
    if extra:
        shown = ", ".join(extra)
        actions += [
            cmd.systemctl(
                "stop",
                *extra,
                description=f"stop {shown} (this host no longer runs it): its warm shutdown",
                check=False,
            ),
            _forget_failures(extra, shown),
            unboot(layout, extra, f"{shown}: no longer started at boot"),
        ]
    return (Step("drop processes", state.host, tuple(actions)),)


def _forget_failures(units: list[str], shown: str) -> Command:
    """An instance deploy stopped on purpose is not a failed unit, whatever its exit code (a worker
    that exits non-zero on its warm shutdown): `systemctl --failed` stays about real failures."""
    return cmd.systemctl(
        "reset-failed", *units, description=f"{shown}: stopped on purpose, not failed", check=False
    )


def not_brought_back(config: Config, state: HostState, release: str) -> str | None:
    """What a rollback to `release` says when that release ran processes deploy.yaml no longer has: a
    rollback runs deploy.yaml's processes (their units are configuration, like the jobs'), so it does
    not start them again."""
    info = next((r.info for r in state.releases if r.id == release), None) or {}
    ran = info.get("processes")
    gone = sorted(set(ran) - set(config.processes)) if isinstance(ran, list) else []
    if not gone:
        return None
    return (
        f"release {release} ran {', '.join(gone)}, which deploy.yaml no longer has: the rollback does not "
        "start it again (put it back in deploy.yaml to run it)"
    )
