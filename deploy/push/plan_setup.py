"""The setup plan (pure: config and host state to steps): packages, the app's user, directories, the
env file, systemd units and the Nginx site where they differ; and what refuses a host (an admin's user,
a folder deploy may not take, another project's app of the same name, a host not set up for a push)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

from deploy.config.model import Config
from deploy.layout import (
    layout_for,
    managed_files,
    process_unit_files,
    shared_file_dirs,
    shared_files,
)
from deploy.plan import Command, Plan, Step, Upload
from deploy.push import redis_backups
from deploy.push.backups import backup_steps
from deploy.push.jobs import job_steps
from deploy.push.plan_types import PlanError
from deploy.push.removals import removal_steps
from deploy.remote import commands as cmd
from deploy.remote.commands import DEBIAN_DEFAULT_SITE, nginx_link
from deploy.remote.facts import NGINX_PACKAGES, REQUIRED_PACKAGES, HostState


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
    restart: bool = False,
) -> tuple[Step, ...]:
    """Install the env file, the systemd unit and the Nginx site where they differ from the host's
    (and, once, which project deploys the app here). `restart`: setup starts the app again after it
    (the env file's service URLs change): the host first records that it owes that restart, so that
    an interrupted setup's next run still does it (`Layout.restart_pending`)."""
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
        owed = (cmd.make_file(layout.restart_pending, "root", "root", 0o600, "the app must start again"),)
        steps.append(
            Step(
                "env file",
                host,
                (
                    *(owed if restart else ()),
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
    restart: bool = False,
) -> tuple[Step, ...]:
    """Only what differs from the host: packages, the app user, directories, env file, unit, site
    (`restart`: as for `config_steps`)."""
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
    steps += config_steps(config, state, rendered, secrets, project_id, restart)
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
    restart: Collection[str] = (),
) -> Plan:
    """Prepare every host; an empty plan means every host is already set up. `restart`: the hosts
    where setup starts the app again after it (their env file's service URLs change)."""
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
        steps += setup_steps(config, state, rendered[host], secrets, project_id, host in restart)
        steps += backup_steps(config, state)
        steps += redis_backups.backup_steps(config, state)
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
