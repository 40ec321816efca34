"""The typed model of deploy.yaml: every key, its type, its default, and what a valid value is.

One module per section (new code imports from there; this package re-exports the public names for
the modules and tests that import `deploy.config.model`):
- `base`: value types (names, domains, paths, sizes), validator helpers, `Model` (every section's base)
- `app`: app (and app.static)        - `server`: server, its hosts, ssh, tls
- `processes`: processes and jobs    - `web`: gunicorn, nginx, systemd, docker
- `hooks`: hooks and push            - `services`: services (postgres, redis, backups)
- `root`: `Config` (the whole file, its cross-section checks) and the service helpers
"""

from deploy.config.model.app import App, Static
from deploy.config.model.base import RESERVED_NAMES, Model, control_character, invalid
from deploy.config.model.hooks import Hook, Hooks, Push
from deploy.config.model.processes import Job, Process, Ready
from deploy.config.model.root import Config, service_host, service_host_name, service_network, sql_name
from deploy.config.model.server import SSH, TLS, Host, Server
from deploy.config.model.services import Backups, Postgres, RedisService, Services
from deploy.config.model.web import Docker, Gunicorn, Nginx, Systemd

__all__ = [
    "RESERVED_NAMES",
    "SSH",
    "TLS",
    "App",
    "Backups",
    "Config",
    "Docker",
    "Gunicorn",
    "Hook",
    "Hooks",
    "Host",
    "Job",
    "Model",
    "Nginx",
    "Postgres",
    "Process",
    "Push",
    "Ready",
    "RedisService",
    "Server",
    "Services",
    "Static",
    "Systemd",
    "control_character",
    "invalid",
    "service_host",
    "service_host_name",
    "service_network",
    "sql_name",
]
