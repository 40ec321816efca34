"""The push plan (pure: config, host state and the build to steps): each host's new release prepared
beside the live one (only the changed files sent, the venv reused when its requirements are), then the
phases of deploy.push.plan_switch; and the release commands, once, on the first changed host."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from deploy.config.model import Config
from deploy.layout import (
    Layout,
    layout_for,
    shared_file_dirs,
    shared_files,
)
from deploy.plan import Action, Step, Upload
from deploy.project.requirements import src_root
from deploy.push import processes
from deploy.push.artifact import Artifact, FileEntry, changes, requirements_hash, tarball
from deploy.push.jobs import job_steps
from deploy.push.plan_setup import config_steps, project_identity_clashes, require_setup, shared_roots
from deploy.push.plan_switch import (
    _abort_steps,
    _finish_steps,
    _for_roles,
    _revert_steps,
    _served_marker,
    _start_steps,
    _switch_step,
    _with_new,
)
from deploy.push.plan_types import Build, HostPush, PlanError, PushPlan, platform_tag
from deploy.push.removals import removal_steps
from deploy.push.uvtool import UV_VERSION
from deploy.remote import bytecode
from deploy.remote import commands as cmd
from deploy.remote import uv_commands as uvcmd
from deploy.remote.facts import HostState


def _fingerprint(artifact: Artifact, req_hash: str, gunicorn_conf: str, shared: list[str]) -> str:
    payload = json.dumps([artifact.digest, req_hash, gunicorn_conf, shared])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
    req_hash = requirements_hash(artifact.requirements, state.python_version or "", tag, build.installer)
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

    python_root = src_root(frozenset(artifact.files), config.app.wsgi)
    files = _release_files(config, layout, state, artifact, release, gunicorn_conf)
    venv = _venv(layout, state, build, req_hash, config.push.bytecode == "install")
    prepare = [
        *files.actions,
        *_shared(config, layout, layout.release(release)),
        *venv.actions,
        *_metadata(layout, build, req_hash, fingerprint, python_root, sorted(config.processes)),
    ]
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
        finish=(*job_changes, *_finish_steps(config, layout, after, old_slot, release), *venv.after_switch),
        abort=_abort_steps(config, layout, state, old_slot, new_slot),
        revert=_revert_steps(config, layout, state, old_slot, previous, new_slot),
        diagnose=cmd.slot_log(layout, new_slot),
        files_sent=files.sent,
        files_deleted=files.deleted,
        wheels_sent=venv.wheels_sent,
        venv_reused=venv.reused,
    )
    return _for_roles(config, layout, push)


@dataclass(frozen=True)
class _Files:
    """The actions that put the release's files in place, and how many files were sent and deleted."""

    actions: tuple[Action, ...]
    sent: int
    deleted: int


def _release_files(
    config: Config, layout: Layout, state: HostState, artifact: Artifact, release: str, gunicorn_conf: str
) -> _Files:
    """The release folder: the previous release's files linked in, then only what changed sent (and
    what was deleted removed), and its gunicorn.conf.py."""
    target = layout.release(release)
    previous = state.current
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
    return _Files(tuple(prepare), len(send), len(delete))


def _shared(config: Config, layout: Layout, target: str) -> list[Action]:
    """app.shared folders and app.shared_files: kept across releases in shared/, linked into this one."""
    shared = shared_roots(config.app.shared)
    prepare: list[Action] = []
    if shared:
        # The release's own copies (shipped files) go before any link into shared/ exists in it.
        prepare.append(cmd.remove_paths(target, shared, "no copy of the shared folders of its own"))
    for name in shared:
        prepare.append(cmd.make_dir(f"{layout.paths.shared}/{name}", layout.user, layout.user, 0o750))
        if (parent := str(PurePosixPath(name).parent)) != ".":  # .data/cache: .data need not be shipped
            prepare.append(cmd.make_dir(f"{target}/{parent}", "root", "root", 0o755))
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
    return prepare


@dataclass(frozen=True)
class _Venv:
    """The actions that give the release its venv, the wheels sent for it, whether it was reused."""

    actions: tuple[Action, ...]
    wheels_sent: int
    reused: bool
    #: A new venv's bytecode, compiled in the background once the release serves.
    after_switch: tuple[Step, ...] = ()


def _venv(layout: Layout, state: HostState, build: Build, req_hash: str, compile_now: bool) -> _Venv:
    """The venv of these requirements: reused when the host has it, else built from the wheels sent
    (only those the host lacks); linked as the release's .venv. A new venv's bytecode is compiled by
    the installer when `compile_now` (push.bytecode: install), else after the switch."""
    artifact = build.artifact
    release = build.release
    target = layout.release(release)
    host = state.host
    prepare: list[Action] = []
    venv = layout.venv(req_hash)
    wheels_sent = 0
    reuse = req_hash in state.venvs
    uv = build.uv.get(host) if build.installer == "uv" else None
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
        if uv is not None:
            prepare += [uvcmd.unpack_uv(layout, UV_VERSION, *uv), uvcmd.uv_venv(layout, UV_VERSION, venv)]
        else:
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
            uvcmd.uv_install(layout, UV_VERSION, venv, install_from, compile_now)
            if uv is not None
            else cmd.pip_install(venv, state.pip_wheel or "", layout.wheels, install_from, compile_now),
            cmd.mark_complete(venv),
        ]
    prepare.append(
        cmd.symlink(
            venv, f"{target}/.venv", f".venv -> venvs/{req_hash}" + (" (reused)" if reuse else " (new)")
        )
    )
    # A reused venv is compiled too if it never was (the push that built it failed before its switch).
    if compile_now or req_hash in state.compiled_venvs:
        return _Venv(tuple(prepare), wheels_sent, reuse)
    cache = uvcmd.uv_cache(layout) if uv is not None else ""
    later = Step("bytecode", host, (bytecode.compile_later(layout, req_hash, cache),))
    return _Venv(tuple(prepare), wheels_sent, reuse, (later,))


def _metadata(
    layout: Layout,
    build: Build,
    req_hash: str,
    fingerprint: str,
    python_root: str | None,
    processes: list[str],
) -> list[Action]:
    """The release's .deploy folder: its file manifest, and release.json last (it marks it complete)."""
    target = layout.release(build.release)
    return [
        cmd.make_dir(f"{target}/.deploy", "root", layout.user, 0o750),
        Upload(
            f"{target}/.deploy/manifest.json",
            (json.dumps(build.artifact.manifest, sort_keys=True) + "\n").encode(),
            0o640,
            "root",
            layout.user,
            description="file manifest",
        ),
        # Written last: a release without release.json is unfinished, and pruning removes it.
        Upload(
            f"{target}/.deploy/release.json",
            _release_json(build, req_hash, fingerprint, python_root, processes),
            0o640,
            "root",
            layout.user,
            description="release.json (marks the release complete)",
        ),
    ]


def _file(data: bytes) -> FileEntry:
    return FileEntry(data)


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
