"""Render production configs from templates: a pure function from a Config to {path: text}."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from deploy.config import Config
from deploy.facts import HostFacts

#: Debian 12's nginx; templates fit the version they are rendered for.
DEFAULT_NGINX_VERSION = "1.22.1"


@dataclass(frozen=True)
class Paths:
    """Where everything lives on a host. One place, used by templates, plans and checks."""

    base: str
    releases: str
    shared: str
    current: str
    slots: str
    run_dir: str
    upstream_socket: str
    env_file: str
    unit_template: str
    acme_webroot: str
    nginx_site: str
    nginx_snippets: str
    log_dir: str

    def slot_socket(self, slot: str) -> str:
        """The unix socket Gunicorn of one slot ('blue' or 'green') binds to."""
        return f"{self.run_dir}/{slot}.sock"


def paths_for(config: Config) -> Paths:
    """The on-host layout of the app described by `config`."""
    base = config.base_dir
    name = config.app.name
    return Paths(
        base=base,
        releases=f"{base}/releases",
        shared=f"{base}/shared",
        current=f"{base}/current",
        slots=f"{base}/slots",
        run_dir=f"/run/{name}",
        upstream_socket=f"{base}/live.sock",
        env_file=f"/etc/{name}/env",
        unit_template=f"{name}@.service",
        acme_webroot="/var/lib/deploy/acme",
        nginx_site=f"/etc/nginx/sites-available/{name}.conf",
        nginx_snippets="/etc/nginx/snippets",
        log_dir=f"/var/log/{name}",
    )


def output_files(config: Config) -> dict[str, str]:
    """Each rendered file's path (relative to the output folder) and the template that makes it."""
    name = config.app.name
    return {
        "gunicorn.conf.py": "gunicorn.conf.py.j2",
        f"nginx/{name}.conf": "nginx-site.conf.j2",
        f"nginx/snippets/{name}-security-headers.conf": "nginx-security-headers.conf.j2",
        f"nginx/snippets/{name}-proxy.conf": "nginx-proxy.conf.j2",
        f"systemd/{name}@.service": "app.service.j2",
        "Dockerfile": "Dockerfile.j2",
        ".dockerignore": "dockerignore.j2",
        "compose.yaml": "compose.yaml.j2",
    }


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def context(config: Config, facts: HostFacts) -> dict[str, Any]:
    """Everything a template may use: the config, the layout, and values derived in Python."""
    nginx_version = facts.nginx_version or config.nginx.version or DEFAULT_NGINX_VERSION
    return {
        "config": config,
        "app": config.app,
        "server": config.server,
        "gunicorn": config.gunicorn,
        "nginx": config.nginx,
        "systemd": config.systemd,
        "docker": config.docker,
        "paths": paths_for(config),
        "facts": facts,
        "workers": config.workers_for(facts.cores),
        "nginx_version": nginx_version,
        "nginx_http2_directive": _version_tuple(nginx_version) >= (1, 25, 1),
    }


def _environment(project_dir: Path | None) -> jinja2.Environment:
    shipped = importlib.resources.files("deploy.templates")

    def load_shipped(name: str) -> str | None:
        resource = shipped / name
        return resource.read_text(encoding="utf-8") if resource.is_file() else None

    loaders: list[jinja2.BaseLoader] = []
    if project_dir is not None and (project_dir / "templates").is_dir():
        loaders.append(jinja2.FileSystemLoader(str(project_dir / "templates")))
    loaders.append(jinja2.FunctionLoader(load_shipped))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    config: Config, facts: HostFacts | None = None, project_dir: Path | None = None
) -> dict[str, str]:
    """Render every config file for `config`; the same input always gives byte-identical output.

    A project overrides one shipped template by placing a file of the same name in its own
    `templates/` folder (next to deploy.yaml).
    """
    env = _environment(project_dir)
    ctx = context(config, facts or HostFacts())
    return {path: env.get_template(template).render(ctx) for path, template in output_files(config).items()}
