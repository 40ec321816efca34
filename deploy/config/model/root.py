"""`Config`, the whole of deploy.yaml (its cross-section checks), and the helpers that read a service's
place from it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from deploy.config import folders
from deploy.config.model.app import App
from deploy.config.model.base import _IPV4, Model, ProcessName, _matches, invalid
from deploy.config.model.hooks import Hooks, Push
from deploy.config.model.processes import Job, JobName, Process
from deploy.config.model.server import Server
from deploy.config.model.services import Postgres, RedisService, Services
from deploy.config.model.web import Docker, Gunicorn, Nginx, Systemd


class Config(Model):
    """The whole of deploy.yaml, after the chosen environment has been overlaid."""

    app: App = Field(
        description="The application: what to run, what it needs, what it keeps across releases.",
    )
    server: Server = Field(description="Where the app runs: its names, its hosts, the account it runs as.")
    gunicorn: Gunicorn = Field(default_factory=Gunicorn, description="Gunicorn settings.")
    nginx: Nginx = Field(default_factory=Nginx, description="The Nginx site in front of Gunicorn.")
    systemd: Systemd = Field(default_factory=Systemd, description="Hardening of the app's systemd unit.")
    docker: Docker = Field(default_factory=Docker, description="The container image.")
    hooks: Hooks = Field(
        default_factory=Hooks,
        description="Commands around pushes and rollbacks; they get DEPLOY_RELEASE, DEPLOY_ENVIRONMENT "
        "and DEPLOY_HOSTS in their environment.",
    )
    push: Push = Field(default_factory=Push, description="How releases are rolled out.")
    services: Services = Field(
        default_factory=Services,
        description="Services beside the app on your hosts (Postgres, Redis), set up by `deploy setup`.",
    )
    jobs: dict[JobName, Job] = Field(
        default_factory=dict,
        description="Scheduled jobs by name: systemd timers that run a command in the current release.",
    )
    processes: dict[ProcessName, Process] = Field(
        default_factory=dict,
        description="Processes besides web (workers, a scheduler), by name; each runs under its own "
        "systemd unit in the release's environment and moves to a new release with each push.",
    )
    environments: dict[
        Annotated[str, AfterValidator(_matches(re.compile(r"^[a-z][a-z0-9_-]*$"), "an environment name"))],
        dict[str, Any],
    ] = Field(
        default_factory=dict,
        description="Overlays selected with `-e NAME`: any of the keys above, merged over the base.",
    )
    environment: str | None = Field(
        default=None,
        exclude=True,
        description="The environment overlaid (set by `-e`, not written in deploy.yaml).",
    )

    @model_validator(mode="after")
    def _base_dir_of_its_own(self) -> Config:
        """setup makes server.base_dir and the folders in it root's and the app's: never a system folder."""
        if self.server.base_dir is not None:
            why = folders.host_folder_problem(self.server.base_dir)
            if why is not None:
                raise invalid(
                    "Config",
                    [
                        (
                            ("server", "base_dir"),
                            f"{why}: setup would change its owner and mode; give a folder for this "
                            f"app's releases only, such as /srv/{self.app.name} (the default)",
                        )
                    ],
                )
        return self

    @model_validator(mode="after")
    def _services_fit_the_hosts(self) -> Config:
        """A service's host is one of server.hosts; its env name is not one of the app's own; Postgres's
        pg_hba admits app hosts by address, so a service reached over the network needs IP addresses."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        addresses = [h.address for h in self.server.hosts]
        for name in type(self.services).model_fields:
            service = getattr(self.services, name)
            if service is None:
                continue
            where: tuple[str | int, ...] = ("services", name)
            host = getattr(service, "host", None)
            if host is not None and addresses and host not in addresses:
                problems.append(
                    ((*where, "host"), f"{host!r} is none of server.hosts ({', '.join(addresses)})")
                )
            env = getattr(service, "env", None)
            if env is not None and (env in self.app.env or env in self.app.secrets):
                problems.append(
                    (
                        (*where, "env"),
                        f"{env} is also in app.env or app.secrets; deploy writes {env} itself: remove it "
                        "there, or name another variable here",
                    )
                )
            copy_to = getattr(getattr(service, "backups", None), "copy_to", None) or "/"
            elsewhere = copy_to in addresses and copy_to != service_host(self, service)
            if not copy_to.startswith("/") and not elsewhere:
                problems.append(
                    (
                        (*where, "backups", "copy_to"),
                        f"{copy_to!r} is not another of server.hosts ({', '.join(addresses)}): deploy sets "
                        "up the host that receives the copies, so it must be one of them, not the service's",
                    )
                )
            if service_network(self, service) != "local":
                names = [a for a in addresses if not _IPV4.fullmatch(a)]
                if names:
                    problems.append(
                        (
                            ("server", "hosts"),
                            f"services.{name} is reached over the network and admits app hosts by IPv4 "
                            f"address: give the addresses of {', '.join(names)}",
                        )
                    )
        if problems:
            raise invalid("Config", problems)
        return self

    @model_validator(mode="after")
    def _process_hosts_exist(self) -> Config:
        """A process's `hosts:` names `all`, `first` or a role some host has; `web` is the WSGI app's."""
        roles = {role for host in self.server.hosts for role in host.roles}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in self.processes:
            if name == "web":
                problems.append(
                    (
                        ("processes", name),
                        "`web` is the app itself (app.wsgi); give this process another name",
                    )
                )
        places = [("processes", n, p.hosts) for n, p in self.processes.items()]
        places += [("jobs", n, j.hosts) for n, j in self.jobs.items()]
        for section, name, where in places:
            if where not in ("all", "first") and self.server.hosts and where not in roles:
                known = ", ".join(sorted(roles)) or "none"
                problems.append(
                    (
                        (section, name, "hosts"),
                        f"no host has the role {where!r} (roles of server.hosts: {known}); expected all, "
                        "first or one of those roles",
                    )
                )
        if problems:
            raise invalid("Config", problems)
        return self

    def runs_web(self, host: str) -> bool:
        """Whether the web process runs on `host` (a `Host.name`): its roles hold `web`, the default."""
        found = next((h for h in self.server.hosts if h.name == host), None)
        return found is None or "web" in found.roles

    def hosts_of(self, where: str) -> list[str]:
        """The hosts `where` (`all`, `first` or a role) names, by `Host.name`, in server.hosts' order."""
        hosts = [h.name for h in self.server.hosts]
        if where == "first":
            return hosts[:1]
        if where != "all":
            return [h.name for h in self.server.hosts if where in h.roles]
        return hosts

    def process_hosts(self, name: str) -> list[str]:
        """The hosts process `name` runs on, by `Host.name` (a singleton: the first of them only)."""
        process = self.processes[name]
        hosts = self.hosts_of(process.hosts)
        return hosts[:1] if process.singleton else hosts

    def job_hosts(self, name: str) -> list[str]:
        """The hosts job `name` runs on, by `Host.name`."""
        return self.hosts_of(self.jobs[name].hosts)

    @property
    def base_dir(self) -> str:
        """Where releases, shared data and the `current` link live on each host."""
        return self.server.base_dir or f"/srv/{self.app.name}"

    @property
    def service(self) -> str:
        """The systemd unit name (without .service)."""
        return self.app.name

    @property
    def database(self) -> str:
        """The app's Postgres database name (services.postgres.database, default the app's name)."""
        postgres = self.services.postgres
        return (postgres.database if postgres and postgres.database else None) or sql_name(self)

    @property
    def primary_domain(self) -> str:
        return self.server.domains[0]

    def workers_for(self, cores: int | None) -> int | None:
        """The Gunicorn worker count for a host with `cores` cores (None: decided on the host)."""
        if self.gunicorn.workers != "auto":
            return int(self.gunicorn.workers)
        cores = cores or self.server.cores
        return None if cores is None else 2 * cores + 1


def service_host(config: Config, service: Postgres | RedisService) -> str | None:
    """The address of the host a service runs on: its `host`, or the first of server.hosts."""
    if service.host is not None:
        return service.host
    return config.server.hosts[0].address if config.server.hosts else None


def service_host_name(config: Config, service: Postgres | RedisService) -> str | None:
    """The host a service runs on as plans and output name it (`Host.name`), or None when server.hosts
    has no such host."""
    address = service_host(config, service)
    return next((host.name for host in config.server.hosts if host.address == address), None)


def service_network(config: Config, service: Postgres | RedisService) -> Literal["local", "tls", "private"]:
    """How the app reaches a service: `local` (the app's one host is the service's host), else the
    service's `network`, by default `tls`."""
    addresses = [h.address for h in config.server.hosts]
    if len(addresses) <= 1 and service_host(config, service) in (*addresses, None):
        return "local"
    return service.network or "tls"


def sql_name(config: Config) -> str:
    """The app's name as an SQL name (the default database and role): `-` becomes `_`."""
    return config.app.name.replace("-", "_")
