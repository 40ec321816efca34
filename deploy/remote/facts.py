"""What deploy knows about a target host: plain data that plans, renders and checks receive."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from deploy.config.model import Config
from deploy.layout import (
    backup_copy_folder,
    backup_paths,
    job_files,
    job_unit,
    job_unit_glob,
    layout_for,
    managed_files,
    process_boot_glob,
    process_template_glob,
    process_unit_files,
    redis_backup_paths,
    shared_file_dirs,
    shared_files,
)
from deploy.plan import Command
from deploy.remote.commands import DEBIAN_DEFAULT_SITE, SLOTS
from deploy.remote.scripts import script


@dataclass(frozen=True)
class HostFacts:
    """Facts about one host; None means unknown (rendering then uses a safe default)."""

    cores: int | None = None
    nginx_version: str | None = None
    python_version: str | None = None
    systemd_version: int | None = None
    #: Whether the TLS certificate already exists on the host; None (unknown) renders the full
    #: HTTPS site, False renders the HTTP-only site that serves the ACME challenge first.
    has_certificate: bool | None = None


# --- gathering facts from a host ------------------------------------------------------------------
#
# One command (a Python program run by the host's python3) reports every fact a setup, push,
# rollback or status needs, as JSON, in one round trip; `parse_state` turns it into `HostState`.
# The program reads files and links only: it never changes the host.

#: The fact-gathering program; its one argument is a JSON object naming what to look at.
PROBE = script("probe.py")


@dataclass(frozen=True)
class ReleaseInfo:
    """A release directory on a host; `info` is its release.json (None: unfinished, safe to remove)."""

    id: str
    info: dict[str, object] | None = None
    #: The release took traffic at some point (a failed release never did).
    served: bool = False
    #: The release that served just before this one first did (what a rollback from it goes back to);
    #: None when it was the first, or its marker predates this record.
    before: str | None = None

    @property
    def complete(self) -> bool:
        return self.info is not None


@dataclass(frozen=True)
class LockState:
    """The deploy lock as found on a host."""

    held: bool = False
    #: The record the last holder wrote (JSON text), or None.
    record: str | None = None
    #: Seconds since the holder's last heartbeat.
    heartbeat_age: float | None = None
    #: A step of a push still runs on the host (it holds the work lock): the step's name.
    working: str | None = None
    #: Gathered passively (`probe_command(passive=True)`, while this push takes the lock): the work
    #: file's stamp when the probe began, and whether no holder and no step were there then.
    stamp: str | None = None
    quiet: bool = False

    def holder(self) -> dict[str, object] | None:
        if not self.record:
            return None
        try:
            data = json.loads(self.record)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class HostState:
    """Everything a setup, push or rollback plan needs to know about one host."""

    host: str
    cores: int | None = None
    python_version: str | None = None
    machine: str | None = None
    libc: str | None = None
    libc_version: str | None = None
    pip_wheel: str | None = None
    nginx_version: str | None = None
    systemd_version: int | None = None
    packages: dict[str, bool] = field(default_factory=dict)
    user_exists: bool = False
    links: dict[str, str | None] = field(default_factory=dict)
    owners: dict[str, dict[str, object] | None] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    #: The paths each glob pattern of the probe matched (job units installed on the host).
    globs: dict[str, list[str]] = field(default_factory=dict)
    secret_files: dict[str, str | None] = field(default_factory=dict)
    releases: tuple[ReleaseInfo, ...] = ()
    venvs: tuple[str, ...] = ()
    #: The venvs whose bytecode is compiled (deploy.remote.bytecode).
    compiled_venvs: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()
    manifest: dict[str, list[object]] | None = None
    services: dict[str, str] = field(default_factory=dict)
    lock: LockState = field(default_factory=LockState)
    has_certificate: bool | None = None
    #: Whether `nginx -t` passed (None: not tested).
    nginx_ok: bool | None = None
    #: The names each Nginx configuration file serves (`server_name`), from `nginx -T` (setup only).
    nginx_server_names: dict[str, list[str]] = field(default_factory=dict)
    #: The first names in the app's base_dir (None: it does not exist).
    base_entries: list[str] | None = None
    #: The user deploy logs in as (it runs commands as root: sudo, or root itself).
    login_user: str | None = None

    @property
    def facts(self) -> HostFacts:
        """The facts that rendering uses."""
        return HostFacts(
            cores=self.cores,
            nginx_version=self.nginx_version,
            python_version=self.python_version,
            systemd_version=self.systemd_version,
            has_certificate=self.has_certificate,
        )

    @property
    def current(self) -> str | None:
        """The id of the release the host serves (from the `current` link)."""
        target = self.links.get("current")
        return target.rstrip("/").rsplit("/", 1)[-1] if target else None

    @property
    def live_slot(self) -> str | None:
        """'blue' or 'green': the slot `live.sock` points at, or None before the first push."""
        target = self.links.get("live")
        if not target:
            return None
        name = target.rsplit("/", 1)[-1].removesuffix(".sock")
        return name if name in ("blue", "green") else None

    def slot_release(self, slot: str) -> str | None:
        target = self.links.get(slot)
        return target.rstrip("/").rsplit("/", 1)[-1] if target else None

    @property
    def complete_releases(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.releases if r.complete)


def probe_request(
    *,
    user: str,
    links: dict[str, str],
    owners: list[str],
    files: list[str],
    secret_files: list[str],
    releases: str,
    venvs: str,
    wheels: str,
    units: list[str],
    lock_file: str,
    lock_info: str,
    packages: list[str],
    work_file: str | None = None,
    certificate: str | None,
    nginx_test: bool = False,
    base: str | None = None,
    globs: list[str] | None = None,
    read_globs: list[str] | None = None,
    passive: bool = False,
) -> str:
    """The JSON argument of `PROBE`: what to look at on the host."""
    return json.dumps(
        {
            "user": user,
            "links": links,
            "owners": owners,
            "files": files,
            "secret_files": secret_files,
            "releases": releases,
            "venvs": venvs,
            "wheels": wheels,
            "units": units,
            "lock_file": lock_file,
            "lock_info": lock_info,
            "packages": packages,
            "certificate": certificate,
            "nginx_test": nginx_test,
            "work_file": work_file,
            "base": base,
            "globs": globs or [],
            # Matched and read (their text lands in `files`).
            "read_globs": read_globs or [],
            "passive": passive,
        },
        sort_keys=True,
    )


class FactError(Exception):
    """The host's answer to the fact probe could not be read."""


def parse_state(host: str, text: str) -> HostState:
    """Turn the probe's JSON output into a `HostState`."""
    try:
        data = json.loads(text.strip().splitlines()[-1] if text.strip() else "")
    except (ValueError, IndexError):
        shown = text.strip()[:300]
        raise FactError(f"{host}: the fact probe printed something unexpected: {shown!r}") from None
    python = data.get("python") or {}
    lock = data.get("lock") or {}
    return HostState(
        host=host,
        cores=data.get("cores"),
        python_version=python.get("version"),
        machine=python.get("machine"),
        libc=python.get("libc"),
        libc_version=python.get("libc_version"),
        pip_wheel=data.get("pip_wheel"),
        nginx_version=data.get("nginx_version"),
        systemd_version=data.get("systemd_version"),
        packages=dict(data.get("packages") or {}),
        user_exists=bool(data.get("user_exists")),
        links=dict(data.get("links") or {}),
        owners=dict(data.get("owners") or {}),
        files=dict(data.get("files") or {}),
        globs={k: list(v) for k, v in (data.get("globs") or {}).items()},
        secret_files=dict(data.get("secret_files") or {}),
        releases=tuple(
            ReleaseInfo(
                r["id"],
                r.get("info"),
                bool(r.get("served")),
                r["before"] if isinstance(r.get("before"), str) else None,
            )
            for r in data.get("releases") or []
        ),
        venvs=tuple(data.get("venvs") or ()),
        compiled_venvs=tuple(data.get("compiled_venvs") or ()),
        wheels=tuple(data.get("wheels") or ()),
        manifest=data.get("manifest"),
        services=dict(data.get("services") or {}),
        lock=LockState(
            bool(lock.get("held")),
            lock.get("record"),
            lock.get("heartbeat_age"),
            lock.get("working"),
            lock.get("stamp") if isinstance(lock.get("stamp"), str) else None,
            lock.get("quiet") is True,
        ),
        has_certificate=data.get("has_certificate"),
        nginx_ok=data.get("nginx_ok"),
        nginx_server_names=dict(data.get("nginx_server_names") or {}),
        base_entries=data.get("base_entries"),
        login_user=data.get("login_user"),
    )


#: Debian packages a host needs; apt installs only the missing ones.
REQUIRED_PACKAGES = ("python3", "python3-venv", "nginx-light")
#: Any of these provides the nginx binary.
NGINX_PACKAGES = ("nginx", "nginx-light", "nginx-core", "nginx-full", "nginx-extras")


# --- what the probe should look at -------------------------------------------------------------


def process_units(config: Config) -> list[str]:
    """Every instance of every process in both slots (their states are facts: status, rollback)."""
    layout = layout_for(config)
    return [
        layout.process_unit(name, slot, index)
        for name, process in config.processes.items()
        for slot in SLOTS
        for index in range(1, process.instances + 1)
    ]


def probe_command(config: Config, nginx_test: bool = False, passive: bool = False) -> Command:
    """The one command that gathers every fact a setup, push, rollback or status needs; `passive`: while
    this command takes the deploy lock (no lock is tried; the lock's stamp is read instead)."""
    layout = layout_for(config)
    paths = layout.paths
    links = {
        "current": paths.current,
        "live": paths.upstream_socket,
        "enabled": layout.sites_enabled,
        "debian_default": DEBIAN_DEFAULT_SITE,
    }
    links.update({slot: layout.slot(slot) for slot in SLOTS})
    dirs = [
        paths.base,
        paths.releases,
        paths.shared,
        paths.slots,
        layout.venvs,
        layout.wheels,
        layout.state,
        f"/etc/{config.app.name}",
    ]
    dirs += [f"{paths.shared}/{shared}" for shared in config.app.shared]
    dirs += [path for path, *_ in shared_file_dirs(config)]
    dirs += [path for path, _ in shared_files(config)]
    files = [path for path, _ in [*managed_files(config), *process_unit_files(config)]]
    files += [f"{paths.current}/gunicorn.conf.py", layout.project_file]
    jobs = [path for name in config.jobs for path, _ in job_files(config, name)]
    backups, redis_backups = backup_paths(config), redis_backup_paths(config)
    files += [backups.program, backups.service, backups.timer]
    files += [redis_backups.program, redis_backups.service, redis_backups.timer]
    certificate = paths.tls_certificate  # None when tls is false
    request = probe_request(
        user=config.server.user,
        links=links,
        owners=[
            *dirs,
            paths.env_file,
            backups.folder,
            redis_backups.folder,
            *([copy] if (copy := backup_copy_folder(config)) else []),
        ],
        files=[*files, *jobs],
        secret_files=[paths.env_file],
        releases=paths.releases,
        venvs=layout.venvs,
        wheels=layout.wheels,
        units=[
            *(layout.unit(slot) for slot in SLOTS),
            *(f"{job_unit(config, n)}.timer" for n in config.jobs),
            *process_units(config),
        ],
        lock_file=layout.lock_file,
        lock_info=layout.lock_info,
        work_file=layout.work_file,
        # Only setup (which tests Nginx too) installs packages; a push skips the dpkg query.
        packages=[*REQUIRED_PACKAGES, *NGINX_PACKAGES] if nginx_test else [],
        certificate=certificate,
        nginx_test=nginx_test,
        base=paths.base,
        globs=[job_unit_glob(config), process_boot_glob(config)],
        read_globs=[process_template_glob(config)],
        passive=passive,
    )
    return Command(("python3", "-c", PROBE, request), "gather facts", sudo=True)
