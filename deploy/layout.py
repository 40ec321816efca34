"""Every path on a host: where releases, slots, sockets, the env file, the lock and certificates live.

Pure: functions from a Config to strings. Templates, plans, checks and TLS steps all read paths from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from deploy.config import folders
from deploy.config.model import Config


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
    #: The default servers that drop requests for names no app serves (ports 80 and 443). Shared by
    #: every app on the host: no app's site claims default_server, so several apps can share a host.
    nginx_catch_all: str = "/etc/nginx/conf.d/deploy-catch-all.conf"
    nginx_catch_all_tls: str = "/etc/nginx/conf.d/deploy-catch-all-tls.conf"
    #: The TLS certificate chain and key Nginx serves (None when tls is false): Let's Encrypt's
    #: live folder for ACME, or the user's own files uploaded under /etc/<app>/tls/.
    tls_certificate: str | None = None
    tls_certificate_key: str | None = None

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
        tls_certificate=_tls_files(config)[0],
        tls_certificate_key=_tls_files(config)[1],
    )


def _tls_files(config: Config) -> tuple[str | None, str | None]:
    tls = config.server.tls
    if tls is False:
        return None, None
    folder = f"/etc/letsencrypt/live/{config.primary_domain}" if tls.acme else f"/etc/{config.app.name}/tls"
    return f"{folder}/fullchain.pem", f"{folder}/privkey.pem"


@dataclass(frozen=True)
class Layout:
    """The on-host layout: `Paths` plus the places only push and setup use."""

    paths: Paths
    app: str
    user: str
    state: str
    lock_file: str
    lock_info: str
    #: Every step of a push holds a shared flock on this file while it runs (its children inherit
    #: it); the deploy lock is freed only once an exclusive flock on it shows no step runs any more.
    work_file: str
    history: str
    venvs: str
    wheels: str
    unit_dir: str
    sites_enabled: str

    @property
    def project_file(self) -> str:
        """Which project deploys this app here: its git root commits, written by its first setup or push."""
        return f"{self.state}/project"

    @property
    def restart_pending(self) -> str:
        """Written by setup before it changes the service URLs of the env file, removed once the app
        started again with them: a setup interrupted in between leaves it, and the next one restarts."""
        return f"{self.state}/restart-pending"

    def release(self, release_id: str) -> str:
        return f"{self.paths.releases}/{release_id}"

    def slot(self, slot: str) -> str:
        return f"{self.paths.slots}/{slot}"

    def slot_env(self, slot: str) -> str:
        """The environment file the slot's unit reads when it starts (DEPLOY_RELEASE, ...)."""
        return f"{self.paths.slots}/{slot}.env"

    def unit(self, slot: str) -> str:
        return f"{self.app}@{slot}.service"

    def venv(self, requirements_hash: str) -> str:
        return f"{self.venvs}/{requirements_hash}"

    def release_unit(self, release_id: str, index: int) -> str:
        """The transient unit of a push's `index`-th release command (named, so it can be waited for)."""
        return f"{self.app}-release-{release_id}-{index}.service"

    def process_unit(self, process: str, slot: str, index: int) -> str:
        """One instance of a process beside web: `<app>-<process>@<slot>-<n>.service` (n from 1)."""
        return f"{self.app}-{process}@{slot}-{index}.service"

    def process_units(self, process: str, slot: str) -> str:
        """The pattern that matches every instance of `process` in `slot` (systemctl takes globs)."""
        return f"{self.app}-{process}@{slot}-*.service"

    @property
    def release_units(self) -> str:
        """The pattern that matches every release command's unit of this app."""
        return f"{self.app}-release-*"


def layout_for(config: Config) -> Layout:
    """The layout of `config`'s app on a host."""
    paths = paths_for(config)
    state = f"{paths.base}/.deploy"
    return Layout(
        paths=paths,
        app=config.app.name,
        user=config.server.user,
        state=state,
        lock_file=f"{state}/lock",
        lock_info=f"{state}/lock.json",
        work_file=f"{state}/work",
        history=f"{state}/history.jsonl",
        venvs=f"{paths.base}/venvs",
        wheels=f"{paths.base}/wheels",
        unit_dir="/etc/systemd/system",
        sites_enabled=f"/etc/nginx/sites-enabled/{config.app.name}.conf",
    )


#: certbot's configuration folder on the hosts (Debian's package).
LETSENCRYPT_DIR = "/etc/letsencrypt"


def tls_dir(config: Config) -> str:
    """The app's own folder for TLS material it uploads (own certificate, ACME CA bundle)."""
    return f"/etc/{config.app.name}/tls"


def ca_bundle_path(config: Config) -> str:
    """Where the CA bundle for a private ACME server is uploaded on each host."""
    return f"{tls_dir(config)}/acme-ca.pem"


def account_dir(server: str) -> str:
    """certbot's folder of accounts for one ACME directory URL (host:port, then the path)."""
    parts = urlsplit(server)
    path = parts.path.strip("/")
    return (
        f"{LETSENCRYPT_DIR}/accounts/{parts.netloc}/{path}"
        if path
        else f"{LETSENCRYPT_DIR}/accounts/{parts.netloc}"
    )


def deploy_hook_path(config: Config) -> str:
    """The renewal hook certbot runs after it has renewed a certificate (never on a no-op run)."""
    return f"{LETSENCRYPT_DIR}/renewal-hooks/deploy/{config.app.name}-nginx-reload"


def certbot_dropin_path(config: Config) -> str:
    """A drop-in for certbot.service, so renewals by the timer trust a private ACME server's CA."""
    return f"/etc/systemd/system/certbot.service.d/{config.app.name}-acme-ca.conf"


def challenge_snippet_path(config: Config) -> str:
    """The Nginx snippet the site's ACME location includes (`<app>-acme-*.conf`): stateless answers."""
    return f"{paths_for(config).nginx_snippets}/{config.app.name}-acme-stateless.conf"


#: The rendered default servers' keys in render()'s output (the TLS one only when HTTPS is served).
CATCH_ALL = "nginx/conf.d/deploy-catch-all.conf"
CATCH_ALL_TLS = "nginx/conf.d/deploy-catch-all-tls.conf"


def managed_files(config: Config) -> list[tuple[str, str]]:
    """(path on the host, key in render()'s output) of every config file setup and push install.

    The systemd unit comes first, then the Nginx files. A key missing from a render's output (the
    TLS default server while HTTPS is not served) is not installed, and an installed copy is kept.
    """
    paths = paths_for(config)
    name = config.app.name
    headers, proxy = f"{name}-security-headers.conf", f"{name}-proxy.conf"
    return [
        (f"/etc/systemd/system/{paths.unit_template}", f"systemd/{name}@.service"),
        (paths.nginx_site, f"nginx/{name}.conf"),
        (f"{paths.nginx_snippets}/{headers}", f"nginx/snippets/{headers}"),
        (f"{paths.nginx_snippets}/{proxy}", f"nginx/snippets/{proxy}"),
        (paths.nginx_catch_all, CATCH_ALL),
        (paths.nginx_catch_all_tls, CATCH_ALL_TLS),
    ]


def process_template(config: Config, process: str) -> str:
    """The unit template of a process beside web (its instances are `<slot>-<n>`)."""
    return f"{config.app.name}-{process}@.service"


def process_template_glob(config: Config) -> str:
    """The pattern of every process unit template of this app on a host (it may also match another app
    whose name starts with this one's and a hyphen: their text tells them apart)."""
    return f"{layout_for(config).unit_dir}/{config.app.name}-*@.service"


def process_boot_glob(config: Config) -> str:
    """The pattern of the process instances that start at boot (their links in multi-user.target.wants)."""
    return f"{layout_for(config).unit_dir}/multi-user.target.wants/{config.app.name}-*@*.service"


def process_unit_files(config: Config) -> list[tuple[str, str]]:
    """(path on the host, key in render()'s output) of each process's unit template."""
    return [
        (f"/etc/systemd/system/{process_template(config, name)}", f"systemd/{process_template(config, name)}")
        for name in config.processes
    ]


def shared_files(config: Config) -> list[tuple[str, str]]:
    """(path on the host, path in a release) of each app.shared_files entry: the host's copy lives in
    shared/.files/, a folder the app user owns (so SQLite can put its journal beside the database)."""
    store = f"{paths_for(config).shared}/{folders.SHARED_FILES_DIR}"
    return [(f"{store}/{name}", name) for name in config.app.shared_files]


def shared_file_dirs(config: Config) -> list[tuple[str, str, str, int]]:
    """The folders that hold app.shared_files on the host (owner, group, mode): shared/.files and the
    folders below it, the app user's."""
    if not config.app.shared_files:
        return []
    user = layout_for(config).user
    store = f"{paths_for(config).shared}/{folders.SHARED_FILES_DIR}"
    below = sorted(
        {str(parent) for name in config.app.shared_files for parent in PurePosixPath(name).parents}
    )
    return [(store if p == "." else f"{store}/{p}", user, user, 0o750) for p in below]


@dataclass(frozen=True)
class PostgresPaths:
    """Where services.postgres keeps its files: credentials and deploy's CA on the service host
    (root only), the server's certificate (postgres only), the CA certificate on the app hosts."""

    services: str
    credentials: str
    records: str
    ca_dir: str
    server_tls: str
    ca_on_app_hosts: str

    @property
    def dropin_record(self) -> str:
        return f"{self.records}/postgresql.conf"

    @property
    def hba_record(self) -> str:
        return f"{self.records}/pg_hba.conf"


def postgres_paths(config: Config) -> PostgresPaths:
    """The paths of services.postgres for the app of `config`."""
    name = config.app.name
    services = f"/etc/deploy/{name}/services"
    return PostgresPaths(
        services=services,
        credentials=f"{services}/postgres.env",
        records=f"{services}/postgres",
        ca_dir=f"{services}/postgres-ca",
        server_tls=f"/var/lib/postgresql/deploy-{name}",
        ca_on_app_hosts=f"/etc/{name}/postgres-ca.crt",
    )


# --- services (deploy.yaml services:) ------------------------------------------------------------

#: Debian's redis-server configuration: deploy adds one include line to it and changes nothing else.
REDIS_CONF = "/etc/redis/redis.conf"
#: The port Redis listens on (TLS or plain, per services.redis.network).
REDIS_PORT = 6379


def services_dir(config: Config) -> str:
    """The app's services folder on a service host (root 0755): credentials, settings, deploy's CA."""
    return f"/etc/deploy/{config.app.name}/services"


def service_env_file(config: Config, service: str) -> str:
    """A service's credentials on its host (root 0600), e.g. REDIS_USER and REDIS_PASSWORD."""
    return f"{services_dir(config)}/{service}.env"


def redis_ca_dir(config: Config) -> str:
    """deploy's CA for Redis, on its host (root 0700): ca.key and ca.crt (one CA per service, as
    services.postgres has its own)."""
    return f"{services_dir(config)}/redis-ca"


def redis_ca_cert(config: Config) -> str:
    """The CA certificate the app verifies Redis's certificate with (0644, on every app host)."""
    return f"/etc/{config.app.name}/redis-ca.crt"


def redis_dropin(config: Config) -> str:
    """The app's Redis settings, included by REDIS_CONF (root:redis 0640). Not in /etc/redis, which
    the redis user may change (Debian lets it rewrite its configuration)."""
    return f"{services_dir(config)}/redis.conf"


def redis_users(config: Config) -> str:
    """The app's Redis ACL users, written on the host (the password's hash only; root:redis 0640)."""
    return f"{services_dir(config)}/redis-users.conf"


def redis_tls_dir(config: Config) -> str:
    """Redis's server certificate and key for the app's services (root:redis 0750)."""
    return f"{services_dir(config)}/redis-tls"


def job_unit(config: Config, job: str) -> str:
    """The name (without .service/.timer) of a scheduled job's pair of units: `<app>-job-<job>`."""
    return f"{config.app.name}-job-{job}"


def job_unit_glob(config: Config) -> str:
    """The pattern that matches every job unit file of this app on a host (installed or stale)."""
    return f"{layout_for(config).unit_dir}/{config.app.name}-job-*"


def job_files(config: Config, job: str) -> list[tuple[str, str]]:
    """(path on the host, key in render()'s output) of a job's service, then its timer."""
    unit = job_unit(config, job)
    unit_dir = layout_for(config).unit_dir
    return [(f"{unit_dir}/{unit}.{kind}", f"systemd/{unit}.{kind}") for kind in ("service", "timer")]


# --- Postgres backups (issue #18) ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupPaths:
    """Where the app's Postgres backups and their timer live on the service host."""

    #: The backups: <stamp>.dump and <stamp>.json, in a root 0700 folder.
    folder: str
    #: The host program the timer runs (deploy/remote/scripts/pg_backup.py), root 0644.
    program: str
    service: str
    timer: str

    @property
    def service_unit(self) -> str:
        return self.service.rsplit("/", 1)[1]

    @property
    def timer_unit(self) -> str:
        return self.timer.rsplit("/", 1)[1]


def backup_paths(config: Config) -> BackupPaths:
    """The Postgres backups' paths of `config`'s app."""
    name = config.app.name
    return BackupPaths(
        folder=f"/var/backups/deploy/{name}/postgres",
        program=f"/usr/local/lib/deploy/{name}/pg_backup.py",
        service=f"/etc/systemd/system/{name}-pg-backup.service",
        timer=f"/etc/systemd/system/{name}-pg-backup.timer",
    )


def backup_copy_folder(config: Config) -> str | None:
    """Where services.postgres.backups.copy_to receives copies: <copy_to>/<app>/postgres (None: no copy)."""
    postgres = config.services.postgres
    copy_to = postgres.backups.copy_to if postgres and postgres.backups else None
    if copy_to is None or not copy_to.startswith("/"):
        return None
    return f"{copy_to.rstrip('/')}/{config.app.name}/postgres"


def backup_copy_host(config: Config) -> str | None:
    """The address services.postgres.backups.copy_to names when it names another host (else None)."""
    postgres = config.services.postgres
    copy_to = postgres.backups.copy_to if postgres and postgres.backups else None
    return copy_to if copy_to is not None and not copy_to.startswith("/") else None


def redis_backup_paths(config: Config) -> BackupPaths:
    """The Redis backups' paths of `config`'s app (services.redis.durable), on Redis's host."""
    name = config.app.name
    return BackupPaths(
        folder=f"/var/backups/deploy/{name}/redis",
        program=f"/usr/local/lib/deploy/{name}/redis_backup.py",
        service=f"/etc/systemd/system/{name}-redis-backup.service",
        timer=f"/etc/systemd/system/{name}-redis-backup.timer",
    )


@dataclass(frozen=True)
class CopyPaths:
    """services.postgres.backups.copy_to naming another host: the service host's key and pinned host
    key for it, and the restricted account and folder that receive the copies on that host."""

    #: On the service host (root 0700 folder): the private key (0600), its .pub, the pinned known_hosts.
    folder: str
    key: str
    known_hosts: str
    #: On the target host: the account the key logs in as (forced command), its folder (0700).
    user: str
    home: str
    authorized_keys: str
    target: str


def backup_copy_paths(config: Config) -> CopyPaths:
    name = config.app.name
    folder = f"/etc/deploy/{name}/services/backup-copy"
    home = f"/var/lib/deploy-backups/{name}"
    return CopyPaths(
        folder=folder,
        key=f"{folder}/id_ed25519",
        known_hosts=f"{folder}/known_hosts",
        user=f"{name}-backups"[:32],
        home=home,
        authorized_keys=f"{home}/.ssh/authorized_keys",
        target=f"/var/backups/deploy/{name}/postgres-copies",
    )
