"""A service's change as setup applies it: the app's downtime it costs, said before and after; the
app restarted (host by host, each health-gated) when the service URLs in its env file changed; and
a service deploy.yaml no longer has, which keeps running with its data until the user removes it.
Pure: commands and words from deploy.yaml and what the hosts answered."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from deploy.config.model import Config, sql_name
from deploy.layout import layout_for, services_dir
from deploy.plan import Command, Step
from deploy.push.plan_rollback import host_rollback
from deploy.push.plan_setup import env_file_content
from deploy.push.plan_types import PushPlan
from deploy.remote.facts import HostState

#: The variables services hand the app (whatever services.*.env names, these too: a URL of a
#: service removed from deploy.yaml is one that changed).
SERVICES = ("postgres", "redis")
DEFAULT_VARIABLES = ("DATABASE_URL", "REDIS_URL")


def variables(config: Config) -> list[str]:
    """The env file's variables that come from services (now, or before a change of deploy.yaml)."""
    names = set(DEFAULT_VARIABLES)
    for service in (config.services.postgres, config.services.redis):
        if service is not None:
            names.add(service.env)
    return sorted(names)


#: What `digest_command` prints on a host where an earlier setup changed the service URLs and did not
#: start the app again with them (it was interrupted): never a digest, so the URLs count as changed.
PENDING = "restart-pending"


def digest_command(config: Config) -> Command:
    """The sha256 of the env file's service lines on a host (never the values themselves), or PENDING
    where the app still has to start again with them."""
    pattern = "^(" + "|".join(variables(config)) + ")="
    layout = layout_for(config)
    return Command(
        (
            "sh",
            "-c",
            'if [ -e "$3" ]; then echo "$4"; exit; fi; '
            'grep -E -- "$2" "$1" 2>/dev/null | LC_ALL=C sort | sha256sum | cut -d" " -f1',
            "digest",
            layout.paths.env_file,
            pattern,
            layout.restart_pending,
            PENDING,
        ),
        "the sha256 of the service URLs in the env file",
        sudo=True,
    )


def expected_digest(config: Config, secrets: Mapping[str, str]) -> str:
    """What `digest_command` prints once setup wrote `secrets` into the env file."""
    wanted = {k: v for k, v in secrets.items() if k in variables(config)}
    lines = [line for line in env_file_content(wanted).decode().splitlines() if not line.startswith("#")]
    text = "".join(f"{line}\n" for line in sorted(lines))
    return hashlib.sha256(text.encode()).hexdigest()


def urls_changed(config: Config, secrets: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """The hosts whose env file held other service URLs than setup writes now (`found`: the digest
    each host printed before setup)."""
    want = expected_digest(config, secrets)
    return [host for host, digest in found.items() if digest.strip() != want]


def restart_plan(config: Config, states: Mapping[str, HostState], hosts: Iterable[str]) -> PushPlan:
    """The app started again on `hosts` with what its env file holds now, as a rollback switches: the
    release it serves starts in the other slot, passes the health gate, takes the traffic, and the old
    slot stops (no downtime; a failure leaves the host on the old slot)."""
    wanted = [states[host] for host in hosts if states[host].current]
    out = tuple(host_rollback(config, state, state.current, restart=True) for state in wanted)
    return PushPlan("restart", out[0].release if out else "", out)


# --- the downtime a service's change costs --------------------------------------------------------


def before(step: Step, persistence: str | None = None) -> str | None:
    """What a service step is about to cost the app, said before it runs (None: not a service step)."""
    name = step.name
    if name.startswith("postgres (restart"):
        why = name.removeprefix("postgres (restart: ").removesuffix(")")
        return (
            f"{step.host}: Postgres restarts ({why}): the app's open database connections drop and new "
            "ones wait until it is back (a few seconds); no data is lost (a clean shutdown)"
        )
    if name == "postgres (reload)":
        return f"{step.host}: Postgres reloads its configuration: no downtime (open connections stay)"
    if name.startswith("redis (") and "start redis-server" not in name:
        kept = (
            "its data is lost (persistence: none keeps nothing)"
            if persistence == "none"
            else f"its data is kept (persistence: {persistence}, written at the shutdown)"
        )
        return (
            f"{step.host}: redis-server restarts (Redis has no reload): the app cannot reach Redis until "
            f"it is back (about a second, longer with much data to load); {kept}"
        )
    return None


def after(step: Step, seconds: float, output: str) -> str | None:
    """What it cost, said after it ran (None: it cost nothing)."""
    if any(line.startswith(("restarted ", "redis-server restarted")) for line in output.splitlines()):
        service = "Redis" if step.name.startswith("redis") else "Postgres"
        return f"{step.host}: {service} was restarted: the app could not use it for at most {seconds:.1f}s"
    if any(line.startswith("reloaded ") for line in output.splitlines()):
        return f"{step.host}: Postgres reloaded its configuration: no downtime"
    return None


# --- a service deploy.yaml no longer has -----------------------------------------------------------


def leftovers_command(config: Config) -> Command:
    """Which services of the app have credentials on a host (set up once, by deploy)."""
    return Command(
        ("sh", "-c", 'cd "$1" 2>/dev/null && ls -1 -- *.env 2>/dev/null || true', "ls", services_dir(config)),
        "the app's services set up on this host",
        sudo=True,
    )


def leftovers(config: Config, found: Mapping[str, str]) -> dict[str, list[str]]:
    """{service: hosts} of the services set up on a host that deploy.yaml no longer has."""
    out: dict[str, list[str]] = {}
    for host, listing in found.items():
        names = {line.strip().removesuffix(".env") for line in listing.splitlines()}
        for service in SERVICES:
            if service in names and getattr(config.services, service) is None:
                out.setdefault(service, []).append(host)
    return out


def removal_notes(config: Config, left: Mapping[str, Iterable[str]]) -> list[str]:
    """What setup says of each service removed from deploy.yaml: where it still runs, and how to remove
    it (deploy never deletes data)."""
    app = config.app.name
    lines = []
    for service, hosts in sorted(left.items()):
        for host in hosts:
            if service == "postgres":
                name = sql_name(config)
                data = f"its database and its backups (/var/backups/deploy/{app}/postgres)"
                how = (
                    "take a last backup first ('deploy services backup', with services.postgres back in "
                    f"deploy.yaml), then on {host}: sudo -u postgres dropdb {name}; sudo -u postgres "
                    f"dropuser {name} (the default names: use yours if you set them); "
                    f"sudo rm -r {services_dir(config)}/postgres*"
                )
            else:
                data = f"its data (/var/lib/redis) and its backups (/var/backups/deploy/{app}/redis)"
                how = (
                    f"on {host}: sudo rm {services_dir(config)}/redis*; remove the 'include "
                    f"{services_dir(config)}/redis.conf' line from /etc/redis/redis.conf; sudo systemctl "
                    "disable --now redis-server (if no other app uses it)"
                )
            lines.append(
                f"{host}: services.{service} is no longer in deploy.yaml: its URL is no longer in the app's "
                f"env file, but {service} still runs on {host} with {data} (deploy never deletes data). "
                f"To remove it: {how}"
            )
    return lines
