"""Setup, push and rollback as plans: pure functions from config, host state and artifact to steps.

Nothing here touches a host. The executor runs the steps; `deploy.push.rollout` decides the order (prepare
every host, release commands on one, then start, probe and switch host by host or batch by batch).
Everything before a switch only touches the idle slot and the new release directory, so a push that
dies at any point leaves each host serving what it served before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from deploy.config.model import Config
from deploy.layout import (
    Layout,
    layout_for,
    managed_files,
    process_unit_files,
    shared_file_dirs,
    shared_files,
)
from deploy.plan import Action, Command, Plan, Step, Upload
from deploy.project.requirements import src_root
from deploy.push import processes
from deploy.push.artifact import Artifact, FileEntry, Platform, changes, requirements_hash, tarball
from deploy.push.backups import backup_steps
from deploy.push.jobs import job_steps
from deploy.push.removals import not_brought_back, removal_steps
from deploy.remote import commands as cmd
from deploy.remote.commands import DEBIAN_DEFAULT_SITE, nginx_link
from deploy.remote.facts import NGINX_PACKAGES, REQUIRED_PACKAGES, HostState, ReleaseInfo

#: Seconds between switching `live.sock` and stopping the old slot, so connections Nginx opened
#: just before the switch are accepted by the old Gunicorn before it stops accepting.
DRAIN_SECONDS = 1.0
#: The deploy lock's lease: without a heartbeat for this long, the holder ends and the lock frees.
LOCK_LEASE_SECONDS = 60


class PlanError(Exception):
    """A plan cannot be made for a host (not set up, release not found); the message says what to do."""


# --- managed files --------------------------------------------------------------------------------


def env_file_content(secrets: Mapping[str, str]) -> bytes:
    """The environment file (systemd EnvironmentFile syntax) holding the app's secret values."""
    lines = ["# Written by deploy: the app's secrets (deploy.yaml app.secrets). Mode 0600."]
    for key in sorted(secrets):
        value = secrets[key]
        if "\n" in value or "\r" in value or "\0" in value:
            raise PlanError(
                f"the value of {key} has a line break or NUL, which an environment file cannot hold"
            )
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"')
    return ("\n".join(lines) + "\n").encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_steps(
    config: Config,
    state: HostState,
    rendered: Mapping[str, str],
    secrets: Mapping[str, str],
    project_id: str | None = None,
) -> tuple[Step, ...]:
    """Install the env file, the systemd unit and the Nginx site where they differ from the host's
    (and, once, which project deploys the app here)."""
    layout = layout_for(config)
    host = state.host
    steps: list[Step] = []
    if project_id and not (state.files.get(layout.project_file) or "").strip():
        record = Upload(
            layout.project_file, f"{project_id}\n".encode(), 0o644, "root", "root", description="project"
        )
        steps.append(Step("project", host, (record,)))
    env = env_file_content(secrets)
    env_owner = state.owners.get(layout.paths.env_file) or {}
    # root:root 0600: systemd reads it (as root) before it starts the app as its user, so the app
    # can neither read its secrets from the file nor rewrite what the next start (as root) reads.
    env_ok = state.secret_files.get(layout.paths.env_file) == _sha(env) and (
        env_owner.get("owner"),
        env_owner.get("group"),
        env_owner.get("mode"),
    ) == ("root", "root", 0o600)
    if not env_ok:
        steps.append(
            Step(
                "env file",
                host,
                (
                    Upload(
                        layout.paths.env_file,
                        env,
                        0o600,
                        "root",
                        "root",
                        sensitive=True,
                        description=f"secrets ({len(secrets)} keys)",
                    ),
                ),
            )
        )
    units = [
        Upload(path, rendered[key].encode(), 0o644, "root", "root", description=what)
        for (path, key), what in [
            (managed_files(config)[0], "systemd unit template"),
            *(
                (unit, f"unit template of process {name}")
                for unit, name in zip(process_unit_files(config), config.processes, strict=True)
            ),
        ]
        if state.files.get(path) != rendered[key]
    ]
    if units:
        steps.append(Step("systemd unit", host, (*units, cmd.daemon_reload())))
    if not config.runs_web(host):
        # No web process here: no Nginx site (nor Nginx: see setup_steps).
        return tuple(steps)
    files = [
        (path, rendered[key].encode(), key)
        for path, key in managed_files(config)[1:]
        if key in rendered and state.files.get(path) != rendered[key]
    ]
    links = [] if state.links.get("enabled") == layout.paths.nginx_site else [nginx_link(config)]
    removals = [DEBIAN_DEFAULT_SITE] if state.links.get("debian_default") is not None else []
    if files or links or removals or state.nginx_ok is False:
        steps.append(Step("nginx", host, cmd.nginx_change(files, links, removals)))
    return tuple(steps)


# --- setup ---------------------------------------------------------------------------------------


def shared_roots(shared: tuple[str, ...] | list[str]) -> list[str]:
    """The shared paths a release links to shared/: a path inside another shared path is already
    reached through that one's link (and linking it would write through that link)."""
    names = sorted({name.strip("/") for name in shared})
    return [n for n in names if not any(n.startswith(f"{other}/") for other in names if other != n)]


def _dirs(config: Config) -> list[tuple[str, str, str, int]]:
    layout = layout_for(config)
    paths = layout.paths
    user = layout.user
    out = [
        (paths.base, "root", "root", 0o755),
        (paths.releases, "root", "root", 0o755),
        (paths.slots, "root", "root", 0o755),
        (layout.venvs, "root", "root", 0o755),
        (layout.wheels, "root", "root", 0o755),
        (layout.state, "root", "root", 0o700),
        (paths.shared, "root", user, 0o750),
        (f"/etc/{config.app.name}", "root", "root", 0o755),
    ]
    out += [(f"{paths.shared}/{shared}", user, user, 0o750) for shared in config.app.shared]
    return out + shared_file_dirs(config)


def foreign_base_dir(config: Config, state: HostState) -> str | None:
    """Why the host's base_dir is not deploy's to take (None: deploy made it, or may make it its own).

    deploy resets the mode and owner of the folder it uses: it takes only a folder that does not
    exist yet, one that holds its state folder (`.deploy`, made with the folder), or an empty one
    that root owns and only root can write to. Anything else belongs to someone else (/tmp, /etc, a
    home folder, another program's data) and is never changed.
    """
    layout = layout_for(config)
    base = layout.paths.base
    found = state.owners.get(base)
    if found is None:
        return None
    if found.get("kind") != "dir":
        return f"{base} exists and is not a folder ({found.get('kind')})"
    marker = state.owners.get(layout.state)
    if marker is not None and marker.get("kind") == "dir" and marker.get("owner") == "root":
        return None
    mode = found.get("mode")
    entries = state.base_entries or []
    problems = []
    if entries:
        problems.append(f"it holds {', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}")
    if found.get("owner") != "root":
        problems.append(f"{found.get('owner')} owns it")
    if not isinstance(mode, int) or mode & 0o7022:
        problems.append(f"its mode is {mode:04o}" if isinstance(mode, int) else "its mode is unknown")
    if not problems:
        return None
    return (
        f"{base} already exists and is not deploy's ({'; '.join(problems)}; no {layout.state} in it): "
        "deploy would change its owner and mode. Point server.base_dir at a new folder (deploy makes "
        "it), or empty it"
    )


def setup_steps(
    config: Config,
    state: HostState,
    rendered: Mapping[str, str],
    secrets: Mapping[str, str],
    project_id: str | None = None,
) -> tuple[Step, ...]:
    """Only what differs from the host: packages, the app user, directories, env file, unit, site."""
    host = state.host
    layout = layout_for(config)
    steps: list[Step] = []
    web = config.runs_web(host)
    missing = [p for p in REQUIRED_PACKAGES if p != "nginx-light" and not state.packages.get(p)]
    if web and not any(state.packages.get(p) for p in NGINX_PACKAGES) and state.nginx_version is None:
        missing.append("nginx-light")
    if missing:
        steps.append(Step("packages", host, (cmd.apt_install(missing),)))
    if not state.user_exists:
        steps.append(
            Step(
                "user",
                host,
                (
                    cmd.create_system_user(layout.user, layout.paths.base),
                    # Nginx reaches the slot sockets through the app's group.
                    *(
                        (
                            Command(
                                ("usermod", "-a", "-G", layout.user, "www-data"),
                                "let Nginx (www-data) reach the app's sockets",
                                sudo=True,
                            ),
                        )
                        if web
                        else ()
                    ),
                ),
            )
        )
    dir_actions = [
        cmd.make_dir(path, owner, group, mode)
        for path, owner, group, mode in _dirs(config)
        if state.owners.get(path) != {"owner": owner, "group": group, "mode": mode, "kind": "dir"}
    ]
    if dir_actions:
        steps.append(Step("directories", host, tuple(dir_actions)))
    file_actions = [
        cmd.make_file(path, layout.user, layout.user, 0o600, f"shared file {path} (empty if new)")
        for path, _ in shared_files(config)
        if state.owners.get(path)
        != {"owner": layout.user, "group": layout.user, "mode": 0o600, "kind": "file"}
    ]
    if file_actions:
        steps.append(Step("shared files", host, tuple(file_actions)))
    steps += config_steps(config, state, rendered, secrets, project_id)
    steps += job_steps(config, state, rendered)
    steps += removal_steps(config, state, instances=True)
    return tuple(steps)


def admin_app_user(config: Config, state: HostState) -> str | None:
    """Why `server.user` must not run the app: it is the user deploy logs in as, which has root's
    powers (sudo, or root itself), so the app (and anyone who breaks into it) would have them too."""
    if state.login_user and config.server.user == state.login_user:
        return (
            f"{state.host}: server.user {config.server.user!r} is the user deploy logs in as, and it runs "
            "commands as root (sudo): an app running as that user could do anything on the host. Give "
            "the app its own user (deploy creates it), e.g. server.user: " + config.app.name
        )
    return None


def refuse_hosts(config: Config, states: Mapping[str, HostState]) -> None:
    """Raise PlanError for hosts setup must not touch at all: the app would run as the login user,
    or base_dir is a folder deploy does not own. Setup checks this before it takes the deploy lock
    (which makes base_dir/.deploy), and again in its plan."""
    admins = [why for state in states.values() if (why := admin_app_user(config, state))]
    if admins:
        raise PlanError("\n".join(admins))
    foreign = [f"{host}: {why}" for host, state in states.items() if (why := foreign_base_dir(config, state))]
    if foreign:
        raise PlanError("server.base_dir: " + "\n  ".join(foreign))


def setup_plan(
    config: Config,
    states: Mapping[str, HostState],
    rendered: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, str],
    project_id: str | None = None,
) -> Plan:
    """Prepare every host; an empty plan means every host is already set up."""
    project_identity_clashes(config, states, project_id)
    refuse_hosts(config, states)
    clashes = [clash for state in states.values() for clash in domain_clashes(config, state)]
    if clashes:
        raise PlanError(
            "another Nginx site serves this app's domains, and Nginx answers a name from one site only "
            "(the first it reads). Give each app its own server.domains, or remove the other site:\n  "
            + "\n  ".join(clashes)
        )
    steps: list[Step] = []
    for host, state in states.items():
        steps += setup_steps(config, state, rendered[host], secrets, project_id)
        steps += backup_steps(config, state)
    return Plan(tuple(steps))


def project_identity_clashes(config: Config, states: Mapping[str, HostState], project_id: str | None) -> None:
    """Raise PlanError if another project already deploys an app of this name to one of the hosts
    (a deploy.yaml copied from another project, its app.name left as it was)."""
    if not project_id:
        return
    path = layout_for(config).project_file
    mine = set(project_id.split(","))
    others = []
    for host, state in states.items():
        recorded = (state.files.get(path) or "").strip()
        if recorded and not mine & set(recorded.split(",")):
            others.append(f"{host}: {path} names git root {recorded[:12]}; this project's: {project_id[:12]}")
    if others:
        raise PlanError(
            f"another project already deploys an app named {config.app.name!r} here, and this one would "
            "replace it (its unit, site, secrets and releases). Give this project its own app.name; if it "
            f"really is the same app (its history was rewritten), remove {path} on those hosts:\n  "
            + "\n  ".join(others)
        )


def domain_clashes(config: Config, state: HostState) -> list[str]:
    """Another Nginx site on the host (another app, or one not made by deploy) serving our domains."""
    layout = layout_for(config)
    ours = {layout.sites_enabled, layout.paths.nginx_site}
    out = []
    for path, names in sorted(state.nginx_server_names.items()):
        both = [d for d in config.server.domains if d in names]
        if both and path not in ours:
            out.append(f"{state.host}: {path} already serves {', '.join(both)}")
    return out


def require_setup(config: Config, state: HostState) -> None:
    """Raise PlanError if `deploy setup` has not prepared the host (or the app would run as root's user)."""
    admin = admin_app_user(config, state)
    if admin:
        raise PlanError(admin)
    layout = layout_for(config)
    unit_path = managed_files(config)[0][0]
    missing = []
    if not state.user_exists:
        missing.append(f"the user {layout.user}")
    if state.owners.get(layout.state) is None:
        missing.append(f"the directory {layout.state}")
    if state.files.get(unit_path) is None:
        missing.append(f"the unit {unit_path}")
    if not state.pip_wheel:
        missing.append("python3-venv")
    if missing:
        env = f" -e {config.environment}" if config.environment else ""
        raise PlanError(
            f"{state.host} is not set up ({', '.join(missing)} missing): run 'deploy setup{env}' first"
        )


# --- push ----------------------------------------------------------------------------------------


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


def _fingerprint(artifact: Artifact, req_hash: str, gunicorn_conf: str, shared: list[str]) -> str:
    payload = json.dumps([artifact.digest, req_hash, gunicorn_conf, shared])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def platform_tag(state: HostState) -> str:
    return Platform(
        state.python_version or "", state.machine or "", state.libc or "", state.libc_version or ""
    ).tag


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


def _release_json(
    build: Build, req_hash: str, fingerprint: str, python_root: str | None, processes: list[str]
) -> bytes:
    info = {
        # The processes it ran (what a rollback to it says it does not bring back: deploy.push.removals).
        "processes": processes,
        "python_root": python_root,
        "id": build.release,
        "commit": build.artifact.commit,
        "dirty": build.artifact.dirty,
        "requirements": req_hash,
        "fingerprint": fingerprint,
        "by": build.who,
        "environment": build.environment,
    }
    return (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()


def host_push(
    config: Config, state: HostState, rendered: Mapping[str, str], secrets: Mapping[str, str], build: Build
) -> HostPush:
    """One host's part of a push: prepare the new release beside the live one, start, probe, switch."""
    require_setup(config, state)
    layout = layout_for(config)
    host = state.host
    artifact = build.artifact
    release = build.release
    if any(r.id == release for r in state.releases):
        raise PlanError(f"{host}: a release named {release} already exists; push again in a second")
    tag = platform_tag(state)
    req_hash = requirements_hash(artifact.requirements, state.python_version or "", tag)
    gunicorn_conf = rendered["gunicorn.conf.py"]
    fingerprint = _fingerprint(
        artifact,
        req_hash,
        gunicorn_conf,
        [*config.app.shared, *(f"file:{f}" for f in config.app.shared_files), *processes.fingerprint(config)],
    )
    settings = config_steps(config, state, rendered, secrets, build.project_id)
    # After the switch (finish): job units run what `current` points at, once the push succeeded.
    job_changes = (*job_steps(config, state, rendered), *removal_steps(config, state, instances=False))
    old_slot = state.live_slot
    new_slot = cmd.other_slot(old_slot)
    previous = state.current
    current_info = next((r.info for r in state.releases if r.id == previous), None) or {}
    web = config.runs_web(host)
    live_ok = old_slot is not None and (not web or state.services.get(layout.unit(old_slot)) == "active")
    if current_info.get("fingerprint") == fingerprint and live_ok and not settings and not job_changes:
        return HostPush(host, previous or release, previous, old_slot, old_slot or new_slot, unchanged=True)

    target = layout.release(release)
    python_root = src_root(frozenset(artifact.files), config.app.wsgi)
    prepare: list[Action] = [cmd.make_dir(target, "root", "root", 0o755)]
    remote_manifest = state.manifest if previous else None
    if remote_manifest is not None and previous:
        prepare.append(cmd.link_release_files(layout.release(previous), target))
    send, delete = changes(artifact, remote_manifest)
    shared = shared_roots(config.app.shared)
    if remote_manifest is not None:
        # First of all, the previous release's links (into shared/ and to its venv) go: until they are
        # gone, a path below one of them is the persistent data or the venv, not this release's file.
        stale = sorted(set(delete) | {".deploy", ".venv", *shared, *config.app.shared_files})
        prepare.append(
            cmd.remove_paths(target, stale, f"drop {len(delete)} deleted file(s), old links and metadata")
        )
        # And the folders they leave empty (an old .dist-info after a version bump, empty, would be a
        # distribution without a version to importlib.metadata).
        prepare.append(cmd.prune_empty_dirs(target))
    if send:
        archive = f"{target}/.deploy-files.tar"
        prepare.append(
            Upload(
                archive,
                # Group: the app's user group, which reads the files (not world-readable).
                tarball(artifact.files, send, artifact.timestamp, group=layout.user),
                0o600,
                "root",
                "root",
                description=f"{len(send)} changed file(s)",
            )
        )
        prepare.append(cmd.extract_tar(archive, target, f"unpack {len(send)} file(s)"))
    prepare.append(
        Upload(
            f"{target}/gunicorn.conf.py",
            gunicorn_conf.encode(),
            0o640,
            "root",
            layout.user,
            description="gunicorn.conf.py",
        )
    )
    if shared:
        # The release's own copies (shipped files) go before any link into shared/ exists in it.
        prepare.append(cmd.remove_paths(target, shared, "no copy of the shared folders of its own"))
    for name in shared:
        prepare.append(cmd.make_dir(f"{layout.paths.shared}/{name}", layout.user, layout.user, 0o750))
        prepare.append(
            cmd.symlink(
                f"{layout.paths.shared}/{name}",
                f"{target}/{name}",
                f"{name} -> shared/{name} (kept across releases)",
            )
        )
    if config.app.shared_files:
        prepare.append(
            cmd.remove_paths(target, list(config.app.shared_files), "no copy of the shared files of its own")
        )
        prepare += [
            cmd.make_dir(path, owner, group, mode) for path, owner, group, mode in shared_file_dirs(config)
        ]
    for host_path, name in shared_files(config):
        parent = str(PurePosixPath(name).parent)
        if parent != ".":
            prepare.append(cmd.make_dir(f"{target}/{parent}", "root", "root", 0o755))
        prepare.append(cmd.make_file(host_path, layout.user, layout.user, 0o600, f"shared file {host_path}"))
        prepare.append(
            cmd.symlink(
                host_path, f"{target}/{name}", f"{name} -> shared/.files/{name} (kept across releases)"
            )
        )
    venv = layout.venv(req_hash)
    wheels_sent = 0
    reuse = req_hash in state.venvs
    if not reuse:
        wheels = build.wheels.get(host, {})
        missing = sorted(name for name in wheels if name not in state.wheels)
        wheels_sent = len(missing)
        if missing:
            archive = f"{layout.wheels}/.incoming-{release}.tar"
            files = {name: _file(wheels[name]) for name in missing}
            prepare.append(
                Upload(
                    archive,
                    tarball(files, missing),
                    0o600,
                    "root",
                    "root",
                    description=f"{len(missing)} wheel(s)",
                )
            )
            prepare.append(cmd.extract_tar(archive, layout.wheels, f"unpack {len(missing)} wheel(s)"))
        requirements = artifact.requirement_set
        prepare.append(cmd.new_venv(venv))
        if requirements.generated is not None:
            # pyproject.toml: its dependency list, kept in the venv it built.
            install_from = f"{venv}/requirements.txt"
            prepare.append(
                Upload(
                    install_from,
                    requirements.generated,
                    0o644,
                    "root",
                    "root",
                    description=f"the dependencies listed in {requirements.entry}",
                )
            )
        else:
            # pip follows -r/-c includes relative to this file, inside the release.
            install_from = f"{target}/{requirements.entry}"
        prepare += [
            cmd.pip_install(venv, state.pip_wheel or "", layout.wheels, install_from),
            cmd.mark_complete(venv),
        ]
    prepare.append(
        cmd.symlink(
            venv, f"{target}/.venv", f".venv -> venvs/{req_hash}" + (" (reused)" if reuse else " (new)")
        )
    )
    prepare.append(cmd.make_dir(f"{target}/.deploy", "root", layout.user, 0o750))
    prepare.append(
        Upload(
            f"{target}/.deploy/manifest.json",
            (json.dumps(artifact.manifest, sort_keys=True) + "\n").encode(),
            0o640,
            "root",
            layout.user,
            description="file manifest",
        )
    )
    # Written last: a release without release.json is unfinished, and pruning removes it.
    prepare.append(
        Upload(
            f"{target}/.deploy/release.json",
            _release_json(build, req_hash, fingerprint, python_root, sorted(config.processes)),
            0o640,
            "root",
            layout.user,
            description="release.json (marks the release complete)",
        )
    )

    after = _with_new(state, release, new_slot)
    push = HostPush(
        host=host,
        release=release,
        previous=previous,
        old_slot=old_slot,
        new_slot=new_slot,
        prepare=(*settings, Step("upload", host, tuple(prepare))),
        start=(
            *_start_steps(config, layout, host, new_slot, release, python_root),
            *processes.start_step(config, layout, host, old_slot, new_slot, release),
        ),
        switch=(
            _switch_step(
                layout,
                host,
                new_slot,
                release,
                _served_marker(layout, release, previous),
                processes.at_boot(config, layout, host, new_slot),
            ),
        ),
        finish=(*job_changes, *_finish_steps(config, layout, after, old_slot, release)),
        abort=_abort_steps(config, layout, state, old_slot, new_slot),
        revert=_revert_steps(config, layout, state, old_slot, previous, new_slot),
        diagnose=cmd.slot_log(layout, new_slot),
        files_sent=len(send),
        files_deleted=len(delete),
        wheels_sent=wheels_sent,
        venv_reused=reuse,
    )
    return _for_roles(config, layout, push)


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


def _file(data: bytes) -> FileEntry:
    return FileEntry(data)


def _with_new(state: HostState, release: str, slot: str) -> HostState:
    """The host's state as it will be after the switch (for pruning): `release` current, in `slot`,
    served after the release that is current now."""
    links = dict(state.links)
    links["current"] = release
    links[slot] = release
    new = ReleaseInfo(release, {"id": release}, served=True, before=state.current)
    return replace(state, releases=(*state.releases, new), links=links)


def push_plan(
    config: Config,
    states: Mapping[str, HostState],
    rendered: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, str],
    build: Build,
) -> PushPlan:
    """The whole push: each host's part, and the release commands on the first changed host."""
    project_identity_clashes(config, states, build.project_id)
    hosts = tuple(host_push(config, state, rendered[host], secrets, build) for host, state in states.items())
    changed = [h for h in hosts if not h.unchanged]
    release_steps: tuple[Step, ...] = ()
    if changed and config.app.release:
        layout = layout_for(config)
        first = changed[0]
        python_root = src_root(frozenset(build.artifact.files), config.app.wsgi)
        python_path = f"{layout.release(build.release)}/{python_root}" if python_root else None
        release_steps = (
            Step(
                "release",
                first.host,
                tuple(
                    cmd.run_in_release(
                        layout,
                        layout.release(build.release),
                        command,
                        build.release,
                        build.environment,
                        dict(config.app.env),
                        f"release command: {command}",
                        python_path,
                        unit=layout.release_unit(build.release, index),
                    )
                    for index, command in enumerate(config.app.release, 1)
                ),
            ),
        )
    return PushPlan("push", build.release, hosts, release_steps)


# --- rollback ------------------------------------------------------------------------------------


def host_rollback(config: Config, state: HostState, target: str | None) -> HostPush:
    """One host back to `target` (default: the release before the current one), blue/green as a push."""
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
    if wanted == current:
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
