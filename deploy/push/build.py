"""What a push ships besides the artifact: the release's name, the wheels each host needs, and the
project's own distribution metadata."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from deploy.config.model import Config
from deploy.project.requirements import RequirementSet, src_root
from deploy.push.artifact import (
    Artifact,
    ArtifactError,
    Platform,
    default_cache,
    requirements_hash,
)
from deploy.push.console import Console
from deploy.push.owndist import checkout_of, own_distribution
from deploy.push.plan_types import platform_tag
from deploy.push.uvtool import UvError, uv_wheel
from deploy.push.wheelhouse import wheelhouse
from deploy.push.wheels import pins_problem, worker_problem
from deploy.remote.facts import HostState


def release_id(short: str) -> str:
    """A new release's name: the time now (UTC) and the commit's short hash."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + short


def wheels_for(
    config: Config, states: Mapping[str, HostState], requirements: RequirementSet, printer: Console
) -> dict[str, dict[str, bytes]]:
    """The wheels each host needs (none where a venv of these requirements is already there), one
    wheelhouse per Python version and platform; ends the command when one cannot be built."""
    out: dict[str, dict[str, bytes]] = {}
    # One wheelhouse per Python version and platform: markers may depend on the full version.
    cache: dict[Platform, dict[str, bytes]] = {}
    for host, state in states.items():
        tag = platform_tag(state)
        key = requirements_hash(requirements.key, state.python_version or "", tag, config.push.installer)
        if key in state.venvs:
            continue
        platform = _platform(state)
        if platform not in cache:
            started = time.monotonic()
            try:
                files = wheelhouse(requirements, platform, default_cache(), printer.say)
            except ArtifactError as exc:
                printer.fail(f"{host}: {exc}", 1)
            problem = worker_problem(config.gunicorn.worker_class, files, config.app.requirements)
            problem = problem or pins_problem(files, config.app.requirements)
            if problem is not None:
                printer.fail(f"nothing was changed: {problem}", 1)
            cache[platform] = {name: path.read_bytes() for name, path in files.items()}
            printer.say(f"  wheels for {tag}: {len(files)} ({time.monotonic() - started:.2f}s)")
        out[host] = cache[platform]
    return out


def _platform(state: HostState) -> Platform:
    return Platform(
        state.python_version or "", state.machine or "", state.libc or "", state.libc_version or ""
    )


def with_uv(
    config: Config, states: Mapping[str, HostState], wheels: dict[str, dict[str, bytes]], printer: Console
) -> dict[str, tuple[str, str, str]]:
    """With push.installer uv: the uv wheel added to the wheels of every host that gets a new venv,
    and per such host the wheel's name, sha256 and the uv program's path in it (for the plan)."""
    if config.push.installer != "uv":
        return {}
    out: dict[str, tuple[str, str, str]] = {}
    for host, files in wheels.items():
        try:
            uv = uv_wheel(_platform(states[host]), default_cache(), printer.say)
        except UvError as exc:
            printer.fail(f"{host}: {exc}", 1)
        wheels[host] = {**files, uv.name: uv.data}
        out[host] = (uv.name, uv.sha256, uv.entry)
    return out


def with_own_distribution(config: Config, project: Path, artifact: Artifact, printer: Console) -> Artifact:
    """The artifact with the project's own distribution metadata beside its code (deploy.push.owndist)."""
    python_root = src_root(frozenset(artifact.files), config.app.wsgi)
    # The committed project, unless the working tree is shipped (--allow-dirty): its files then.
    checkout = None if artifact.dirty else checkout_of(project, artifact.commit)
    extra = own_distribution(artifact.files, python_root, default_cache(), printer.say, checkout)
    return replace(artifact, files={**artifact.files, **extra}) if extra else artifact
