"""services.postgres as data: its facts, its configuration files (conf.d drop-in, pg_hba), the steps
that set it up on its host, and the URL the app gets. Pure: nothing here touches a host.

The host script `postgres_apply.sh` does what only the host can (its password, its CA and server
certificate, the role and the database), idempotently; the plan runs it only when something differs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from deploy.config.model import Config, Postgres, service_host, service_network, sql_name
from deploy.layout import PostgresPaths, postgres_paths
from deploy.plan import Command, Step, Upload
from deploy.remote import commands as cmd
from deploy.remote.executor import host_name
from deploy.remote.scripts import script

PROBE = script("postgres_probe.sh")
APPLY = script("postgres_apply.sh")
PORT = 5432
#: Settings Postgres reads only when it starts: a change of any of them needs a restart.
RESTART_SETTINGS = frozenset({"listen_addresses", "port", "max_connections", "shared_buffers"})
MB = 1024


class PostgresError(Exception):
    """services.postgres cannot be set up on its host as it is; the message says why."""


@dataclass(frozen=True)
class Settings:
    """services.postgres with every default resolved."""

    host: str
    database: str
    user: str
    network: Literal["local", "tls", "private"]
    env: str
    max_connections: int
    app_hosts: tuple[str, ...]
    #: How the executor names the service host and each app host (the address, and a port if any).
    names: dict[str, str]

    @property
    def host_name(self) -> str:
        return self.names[self.host]

    @property
    def tls(self) -> bool:
        return self.network == "tls"


def settings(config: Config) -> Settings | None:
    """services.postgres resolved (None when the app has no Postgres)."""
    pg: Postgres | None = config.services.postgres
    if pg is None:
        return None
    host = service_host(config, pg)
    assert host is not None, "the loader refuses services without server.hosts"
    return Settings(
        host=host,
        database=pg.database or sql_name(config),
        user=pg.user or sql_name(config),
        network=service_network(config, pg),
        env=pg.env,
        max_connections=pg.max_connections,
        app_hosts=tuple(h.address for h in config.server.hosts),
        names={h.address: host_name(h) for h in config.server.hosts},
    )


@dataclass(frozen=True)
class Facts:
    """What the probe found on the service host."""

    installed: bool
    mem_kb: int
    running: bool
    enabled: bool
    credentials: bool
    ca: bool
    server_cert: bool
    role: bool
    database: bool
    records: dict[str, str]
    #: The app whose services.postgres wrote the cluster's pg_hba.conf ("" if none did).
    hba_owner: str = ""


def _where(pg: Settings, paths: PostgresPaths) -> tuple[str, ...]:
    """The arguments both host scripts start with: ROLE DATABASE RECORDS CREDENTIALS CA_DIR SERVER_TLS."""
    return (pg.user, pg.database, paths.records, paths.credentials, paths.ca_dir, paths.server_tls)


def probe_command(config: Config, pg: Settings) -> Command:
    return Command(
        ("sh", "-c", PROBE, "postgres-probe", *_where(pg, postgres_paths(config))),
        "what Postgres is like on its host",
        sudo=True,
    )


def parse_facts(output: str) -> Facts:
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    records = {
        key.removeprefix("record_"): base64.b64decode(value).decode("utf-8", "replace")
        for key, value in values.items()
        if key.startswith("record_")
    }
    return Facts(
        installed=values.get("installed") == "yes",
        mem_kb=int(values.get("mem_kb") or 0),
        running=values.get("running") == "yes",
        enabled=values.get("enabled") == "yes",
        credentials=values.get("credentials") == "yes",
        ca=values.get("ca") == "yes",
        server_cert=values.get("server_cert") == "yes",
        role=values.get("role", "0").strip() not in ("", "0"),
        database=values.get("database", "0").strip() not in ("", "0"),
        records=records,
        hba_owner=values.get("hba_owner", "").strip(),
    )


# --- the configuration files ------------------------------------------------------------------------


def memory(mem_kb: int, max_connections: int) -> dict[str, str]:
    """Memory settings for a host with `mem_kb` of RAM, within safe bounds: shared_buffers a quarter
    (128MB to 8GB), effective_cache_size three quarters, work_mem what is left over per connection
    (4MB to 64MB), maintenance_work_mem a sixteenth (64MB to 1GB)."""
    ram_mb = max(mem_kb // MB, 512)
    shared = min(max(ram_mb // 4, 128), 8 * MB)
    work = min(max((ram_mb - shared) // (max_connections * 3), 4), 64)
    maintenance = min(max(ram_mb // 16, 64), MB)
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(ram_mb * 3 // 4, shared)}MB",
        "work_mem": f"{work}MB",
        "maintenance_work_mem": f"{maintenance}MB",
    }


def dropin(config: Config, pg: Settings, mem_kb: int) -> str:
    """The conf.d drop-in: where Postgres listens (never '*'), SCRAM, TLS files, memory."""
    paths = postgres_paths(config)
    listen = "localhost" if pg.network == "local" else f"localhost,{pg.host}"
    values = {
        "listen_addresses": f"'{listen}'",
        "port": str(PORT),
        "max_connections": str(pg.max_connections),
        "password_encryption": "'scram-sha-256'",
        **{key: f"'{value}'" for key, value in memory(mem_kb, pg.max_connections).items()},
    }
    if pg.tls:
        values |= {
            "ssl": "on",
            "ssl_cert_file": f"'{paths.server_tls}/server.crt'",
            "ssl_key_file": f"'{paths.server_tls}/server.key'",
            "ssl_min_protocol_version": "'TLSv1.2'",
        }
    lines = [f"# Written by deploy (services.postgres of {config.app.name}); the next setup replaces edits."]
    lines += [f"{key} = {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def pg_hba(config: Config, pg: Settings) -> str:
    """pg_hba.conf: peer for the postgres account, the app's role from each app host with SCRAM
    (hostssl with TLS; localhost when the app shares the host), everything else rejected."""
    kind = "hostssl" if pg.tls else "host"
    sources = ["127.0.0.1/32", "::1/128"] if pg.network == "local" else [f"{h}/32" for h in pg.app_hosts]
    rows = [("local", "all", "postgres", "", "peer")]
    rows += [(kind, pg.database, pg.user, source, "scram-sha-256") for source in sources]
    rows += [
        ("local", "all", "all", "", "reject"),
        ("host", "all", "all", "0.0.0.0/0", "reject"),
        ("host", "all", "all", "::/0", "reject"),
    ]
    lines = [
        f"# Written by deploy (services.postgres of {config.app.name}): only the app's hosts get in.",
        "# TYPE   DATABASE  USER  ADDRESS  METHOD",
    ]
    lines += ["  ".join(part for part in row if part) for row in rows]
    return "\n".join(lines) + "\n"


def _settings_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def needs_restart(old: str | None, new: str) -> list[str]:
    """The settings whose change needs a restart (a first configuration: none, Postgres starts)."""
    if old is None:
        return []
    before, after = _settings_of(old), _settings_of(new)
    return sorted(key for key in RESTART_SETTINGS if before.get(key) != after.get(key))


# --- the steps ------------------------------------------------------------------------------------


def setup_steps(config: Config, pg: Settings, facts: Facts) -> tuple[Step, ...]:
    """What differs on the service host: the package, the configuration, the role and database."""
    if facts.hba_owner and facts.hba_owner != config.app.name:
        raise PostgresError(
            f"{pg.host_name}: the Postgres cluster's pg_hba.conf belongs to the app {facts.hba_owner!r} "
            "(its services.postgres): deploy gives each app a cluster of its own, so that one app's setup "
            "never locks another out. Put services.postgres.host on another host"
        )
    paths = postgres_paths(config)
    steps: list[Step] = []
    if not facts.installed:
        steps.append(Step("postgres package", pg.host_name, (cmd.apt_install(["postgresql"]),)))
    conf, hba = dropin(config, pg, facts.mem_kb), pg_hba(config, pg)
    uploads = [
        Upload(path, text.encode(), 0o600, description=f"Postgres {name} (deploy's copy)")
        for path, name, text in (
            (paths.dropin_record, "postgresql.conf", conf),
            (paths.hba_record, "pg_hba.conf", hba),
        )
        if facts.records.get(name) != text
    ]
    restart = needs_restart(facts.records.get("postgresql.conf"), conf)
    if uploads:
        steps.append(
            Step("postgres configuration", pg.host_name, (cmd.make_dir(paths.records, mode=0o700), *uploads))
        )
    missing = not (facts.running and facts.enabled and facts.credentials and facts.role and facts.database)
    if uploads or missing or (pg.tls and not (facts.ca and facts.server_cert)):
        name = "postgres"
        if restart:
            name += f" (restart: {', '.join(restart)} changed)"
        elif "postgresql.conf" in facts.records and uploads:
            name += " (reload)"
        steps.append(Step(name, pg.host_name, (apply_command(config, pg, paths, restart),)))
    return tuple(steps)


def apply_command(config: Config, pg: Settings, paths: PostgresPaths, restart: list[str]) -> Command:
    return Command(
        (
            "sh",
            "-c",
            APPLY,
            "postgres-apply",
            config.app.name,
            *_where(pg, paths),
            "yes" if pg.tls else "no",
            pg.host,
            "restart" if restart else "reload",
        ),
        "Postgres: cluster, TLS, role, database, password (made on the host)",
        sudo=True,
    )


def read_command(config: Config) -> Command:
    """Prints the credentials file and (if any) the CA certificate; the output is a secret."""
    paths = postgres_paths(config)
    return Command(
        (
            "sh",
            "-c",
            'cat -- "$1"; echo; cat -- "$2" 2>/dev/null || true',
            "read",
            paths.credentials,
            f"{paths.ca_dir}/ca.crt",
        ),
        "read the credentials (kept in memory)",
        sudo=True,
    )


@dataclass(frozen=True)
class Credentials:
    user: str
    database: str
    password: str
    ca_certificate: str

    def url(self, config: Config, pg: Settings) -> str:
        """The URL the app connects with (the password is URL-safe: made by token_urlsafe)."""
        auth = f"{self.user}:{self.password}"
        if pg.network == "local":
            return f"postgresql://{auth}@localhost:{PORT}/{self.database}"
        url = f"postgresql://{auth}@{pg.host}:{PORT}/{self.database}"
        if pg.tls:
            url += f"?sslmode=verify-full&sslrootcert={postgres_paths(config).ca_on_app_hosts}"
        return url


def parse_credentials(output: str) -> Credentials | None:
    values = dict(line.split("=", 1) for line in output.splitlines() if line.startswith("POSTGRES_"))
    if not values.get("POSTGRES_PASSWORD"):
        return None
    start = output.find("-----BEGIN CERTIFICATE-----")
    ca = output[start:].strip() + "\n" if start >= 0 else ""
    return Credentials(values["POSTGRES_USER"], values["POSTGRES_DB"], values["POSTGRES_PASSWORD"], ca)


def ca_steps(config: Config, pg: Settings, credentials: Credentials, current: dict[str, str]) -> list[Step]:
    """The CA certificate on each app host where it differs (`current`: each host's copy)."""
    if not pg.tls or not credentials.ca_certificate:
        return []
    path = postgres_paths(config).ca_on_app_hosts
    return [
        Step(
            "postgres CA certificate",
            pg.names[host],
            (
                cmd.make_dir(f"/etc/{config.app.name}", "root", "root", 0o755),
                Upload(
                    path,
                    credentials.ca_certificate.encode(),
                    0o644,
                    "root",
                    "root",
                    description="deploy's Postgres CA (verify-full)",
                ),
            ),
        )
        for host in pg.app_hosts
        if current.get(host) != credentials.ca_certificate
    ]
