"""The phases of a push or rollback on one host after its release is ready (pure: steps): start the
idle slot and probe it, switch to it, and then stop the old slot and prune old releases; or, after a
failure, abort (the host had not switched) or revert (it had). Which releases pruning keeps, and which
one a rollback goes to."""

from __future__ import annotations

from dataclasses import replace

from deploy.config.model import Config
from deploy.layout import (
    Layout,
)
from deploy.plan import Action, Command, Step, Upload
from deploy.push import processes
from deploy.push.plan_types import DRAIN_SECONDS, HostPush
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState, ReleaseInfo


def _keep(config: Config, state: HostState, new: str | None) -> set[str]:
    """Releases pruning never removes: the newest N, the current, the rollback target, both slots'."""
    complete = sorted(state.complete_releases)
    keep = (
        set(complete[-(config.push.keep_releases - (1 if new else 0)) :])
        if config.push.keep_releases > 1
        else set()
    )
    current = state.current
    for release in (new, current, rollback_target(state), *(state.slot_release(s) for s in cmd.SLOTS)):
        if release:
            keep.add(release)
    return keep


def prune_list(config: Config, state: HostState, new: str | None) -> list[str]:
    keep = _keep(config, state, new)
    return sorted(r.id for r in state.releases if r.id not in keep)


def rollback_target(state: HostState) -> str | None:
    """The release that served just before the current one, from the host's history: the release the
    current one replaced when it first served (each release's `served` marker records it). So after
    push A, push B, rollback (to A), push C, the target is A, never B that was rolled away from; and
    a second rollback goes further back, never forward again.

    Where that record is missing (a marker written before it was kept) or names a release pruned
    since, the newest earlier release that served (by id: ids are timestamps; failed ones never served).
    """
    releases = {r.id: r for r in state.releases}
    mark = state.current
    seen: set[str] = set()
    while mark is not None and mark not in seen:
        seen.add(mark)
        known = releases.get(mark)
        before = known.before if known is not None else None
        if before is None:
            break
        found = releases.get(before)
        if found is not None and found.complete and before != state.current:
            return before
        mark = before
    served = sorted(r.id for r in state.releases if r.complete and r.served and r.id != state.current)
    earlier = [r for r in served if mark is None or r < mark]
    return earlier[-1] if earlier else None


def slot_env_content(config: Config, layout: Layout, release: str, python_root: str | None) -> bytes:
    """The slot's environment file (the unit reads it at start): which release runs, and where."""
    lines = [
        "# Written by deploy when this slot starts a release.",
        f"DEPLOY_RELEASE={release}",
        f"DEPLOY_ENVIRONMENT={config.environment or 'default'}",
    ]
    if python_root:
        # A src/ layout: the app's package is imported from the release's src/ folder.
        lines.append(f"PYTHONPATH={layout.release(release)}/{python_root}")
    return ("\n".join(lines) + "\n").encode()


def _start_steps(
    config: Config, layout: Layout, host: str, slot: str, release: str, python_root: str | None = None
) -> tuple[Step, ...]:
    return (
        Step(
            "start",
            host,
            (
                cmd.cancel_drain(layout, slot),
                cmd.symlink(layout.release(release), layout.slot(slot), f"slot {slot} -> release {release}"),
                Upload(
                    layout.slot_env(slot),
                    slot_env_content(config, layout, release, python_root),
                    0o644,
                    "root",
                    "root",
                    description=f"DEPLOY_RELEASE={release} for slot {slot}",
                ),
                # Queued, not awaited: the health gate waits for the boot (the app is imported before
                # Gunicorn reports ready), bounded by push.health_timeout, and shows the log if it fails.
                cmd.systemctl(
                    "restart",
                    "--no-block",
                    layout.unit(slot),
                    description=f"start {layout.unit(slot)} (release {release})",
                ),
            ),
        ),
        Step(
            "health",
            host,
            (
                cmd.health_probe(
                    layout,
                    slot,
                    config.primary_domain,
                    config.app.health,
                    config.push.health_timeout,
                    release,
                ),
            ),
        ),
    )


def _served_marker(layout: Layout, release: str, replaced: str | None) -> Upload:
    """Marks `release` as served, naming the release it replaced (what a rollback from it goes to)."""
    return Upload(
        f"{layout.release(release)}/.deploy/served",
        f"{replaced}\n".encode() if replaced else b"",
        0o644,
        "root",
        "root",
        description=f"mark the release as served (after {replaced or 'no release'})",
    )


def _switch_step(
    layout: Layout, host: str, slot: str, release: str, marker: Action, boot: tuple[Command, ...] = ()
) -> Step:
    """live.sock, then current, to the new slot and release; the new slot (`boot`: its process
    instances too) starts at boot."""
    return Step(
        "switch",
        host,
        (
            cmd.symlink(
                layout.paths.slot_socket(slot),
                layout.paths.upstream_socket,
                f"new connections go to slot {slot} (atomic rename of live.sock)",
            ),
            cmd.symlink(layout.release(release), layout.paths.current, f"current -> {release}"),
            marker,
            *cmd.start_at_boot(layout, slot),
            *boot,
        ),
    )


def _revert_steps(
    config: Config,
    layout: Layout,
    state: HostState,
    old_slot: str | None,
    previous: str | None,
    new_slot: str,
) -> tuple[Step, ...]:
    web = _revert_web(config, layout, state.host, old_slot, previous, new_slot)
    old = old_slot if previous else None
    back = processes.back(config, layout, state.host, old, new_slot, state.services)
    return (*web[:-1], replace(web[-1], actions=(*web[-1].actions, *back)))


def _abort_steps(
    config: Config, layout: Layout, state: HostState, old_slot: str | None, new_slot: str
) -> tuple[Step, ...]:
    """A host that failed before its switch: its new slot (web and processes) stops."""
    stop = cmd.systemctl("stop", layout.unit(new_slot), check=False)
    back = processes.back(config, layout, state.host, old_slot, new_slot, state.services)
    return (Step("abort", state.host, (stop, *back)),)


def _revert_web(
    config: Config, layout: Layout, host: str, old_slot: str | None, previous: str | None, new_slot: str
) -> tuple[Step, ...]:
    if old_slot is None or previous is None:
        # First release on this host: nothing to go back to; stop serving the failed one.
        return (
            Step(
                "revert",
                host,
                (
                    cmd.remove_tree(layout.paths.upstream_socket, "remove live.sock (no earlier release)"),
                    cmd.remove_tree(layout.paths.current, "remove current (no earlier release)"),
                    cmd.systemctl("stop", layout.unit(new_slot), check=False),
                    cmd.systemctl("disable", "--quiet", "--no-reload", layout.unit(new_slot), check=False),
                ),
            ),
        )
    return (
        Step(
            "revert",
            host,
            (
                # The old slot kept running until the whole push succeeded; start it if it is not.
                cmd.cancel_drain(layout, old_slot),
                cmd.systemctl(
                    "start", layout.unit(old_slot), description=f"make sure {layout.unit(old_slot)} runs"
                ),
                cmd.health_probe(
                    layout,
                    old_slot,
                    config.primary_domain,
                    config.app.health,
                    config.push.health_timeout,
                    previous,
                ),
                cmd.symlink(
                    layout.paths.slot_socket(old_slot),
                    layout.paths.upstream_socket,
                    f"new connections go back to slot {old_slot}",
                ),
                cmd.symlink(layout.release(previous), layout.paths.current, f"current -> {previous}"),
                *cmd.start_at_boot(layout, old_slot),
                cmd.stop_after_drain(layout, new_slot, DRAIN_SECONDS),
            ),
        ),
    )


def _finish_steps(
    config: Config, layout: Layout, state: HostState, old_slot: str | None, new: str | None
) -> tuple[Step, ...]:
    actions: list[Action] = []
    if old_slot is not None:
        actions.append(cmd.stop_after_drain(layout, old_slot, DRAIN_SECONDS))
        actions += processes.stop_old(config, layout, old_slot)
    doomed = prune_list(config, state, new)
    if doomed:
        actions.append(cmd.prune(layout, doomed))
    return (Step("finish", state.host, tuple(actions)),) if actions else ()


def _for_roles(config: Config, layout: Layout, push: HostPush) -> HostPush:
    """A host whose roles leave out `web` runs no web slot: its push keeps the slot link, env file,
    live.sock and current (the processes and the next push read them) without starting, probing or
    booting Gunicorn."""
    if config.runs_web(push.host):
        return push
    web_units = {layout.unit(slot) for slot in cmd.SLOTS}

    def web_only(action: Action) -> bool:
        if not isinstance(action, Command):
            return False
        argv = action.argv
        starts = argv[:1] == ("systemctl",) and argv[1:2] in (("restart",), ("start",), ("enable",))
        return (starts and bool(web_units & set(argv))) or cmd.HEALTH_PROBE in argv

    def keep(steps: tuple[Step, ...]) -> tuple[Step, ...]:
        kept = (replace(step, actions=tuple(a for a in step.actions if not web_only(a))) for step in steps)
        return tuple(step for step in kept if step.actions)

    return replace(
        push, start=keep(push.start), switch=keep(push.switch), revert=keep(push.revert), diagnose=None
    )


def _with_new(state: HostState, release: str, slot: str) -> HostState:
    """The host's state as it will be after the switch (for pruning): `release` current, in `slot`,
    served after the release that is current now."""
    links = dict(state.links)
    links["current"] = release
    links[slot] = release
    new = ReleaseInfo(release, {"id": release}, served=True, before=state.current)
    return replace(state, releases=(*state.releases, new), links=links)
