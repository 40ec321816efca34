"""services.redis: Redis on one of the app's hosts, its setup steps, and the URL the app reads.

Pure builders (the drop-in Redis includes, the host script's commands, the steps, the URL) plus
`prepare_redis`, which runs them through an executor for `deploy setup` and `deploy push`. The
password is made on the service host (deploy/remote/scripts/redis_setup.sh) and read back into
memory only: it never travels in a command line and is never printed.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlsplit

from deploy import layout
from deploy.config.model import Config, RedisService, service_host_name
from deploy.plan import Command, Step, Upload
from deploy.remote import commands as cmd
from deploy.remote.executor import Executor
from deploy.remote.scripts import script

REDIS_SETUP = script("redis_setup.sh")
#: Redis's snapshot points (Debian's defaults): 1 change in an hour, 100 in 5 minutes, 10000 in 1.
SNAPSHOTS = "3600 1 300 100 60 10000"
#: The unix socket deploy's admin user reaches Redis through on its host (Debian's RuntimeDirectory).
SOCKET = "/run/redis/redis-server.sock"
#: What a dry run shows for a URL whose password the first setup has not made yet.
NOT_YET = "(made on the service host by deploy setup)"


class RedisError(Exception):
    """Redis is not set up where the config says it is (push before setup); the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """What the app needs to reach Redis: its ACL user and password, and the CA to verify it with."""

    user: str
    password: str
    ca_pem: str | None


def redis_of(config: Config) -> RedisService | None:
    return config.services.redis


def service_host(config: Config) -> str:
    """The host Redis runs on (as plans name hosts): services.redis.host, or the first host."""
    redis = config.services.redis
    assert redis is not None
    named = service_host_name(config, redis)
    if named is None:
        raise RedisError(f"services.redis.host {redis.host} is none of server.hosts")
    return named


def address(config: Config) -> str:
    """The address Redis listens on besides 127.0.0.1, and the one in the URL."""
    redis = config.services.redis
    assert redis is not None
    found = redis.host or config.server.hosts[0].address
    return found.strip("[]")


def acl_user(config: Config) -> str:
    """The app's Redis user: the app's name."""
    return config.app.name


def dropin(config: Config) -> str:
    """The settings Redis includes from Debian's redis.conf (later lines win over the package's)."""
    redis = config.services.redis
    assert redis is not None
    tls = layout.redis_tls_dir(config)
    lines = [
        f"# Written by deploy for the app {config.app.name} (deploy.yaml services.redis).",
        "# A change restarts redis-server: Redis has no reload.",
        f"bind 127.0.0.1 {address(config)}",
        "protected-mode yes",
        # For deploy's own administration on the host (root reaches it; the redis user owns it).
        f"unixsocket {SOCKET}",
        "unixsocketperm 700",
    ]
    if redis.network == "tls":
        lines += [
            "port 0",
            f"tls-port {layout.REDIS_PORT}",
            f"tls-cert-file {tls}/redis.crt",
            f"tls-key-file {tls}/redis.key",
            f"tls-ca-cert-file {layout.redis_ca_cert(config)}",
            "tls-auth-clients no",
            'tls-protocols "TLSv1.2 TLSv1.3"',
        ]
    else:
        lines += [f"port {layout.REDIS_PORT}", "tls-port 0"]
    lines.append('save ""' if redis.persistence == "none" else f"save {SNAPSHOTS}")
    lines.append(f"appendonly {'yes' if redis.persistence == 'aof' else 'no'}")
    if redis.persistence == "aof":
        lines.append("appendfsync everysec")
    if redis.maxmemory:
        lines += [f"maxmemory {redis.maxmemory.lower()}", "maxmemory-policy noeviction"]
    lines.append(f"include {layout.redis_users(config)}")
    return "\n".join(lines) + "\n"


def setup_command(config: Config, mode: str) -> Command:
    """The host script in `mode` check (prints `change=...` lines) or apply (makes them so)."""
    redis = config.services.redis
    assert redis is not None
    sha = hashlib.sha256(dropin(config).encode()).hexdigest()
    argv = ("sh", "-c", REDIS_SETUP, "redis-setup", mode, config.app.name, acl_user(config))
    return Command(
        (*argv, address(config), redis.network, sha),
        "Redis: what differs" if mode == "check" else "Redis: credentials, ACL, TLS, settings, restart",
        sudo=True,
    )


def changes(output: str) -> list[str]:
    """The changes a check run of the host script lists."""
    return [line.removeprefix("change=") for line in output.splitlines() if line.startswith("change=")]


def other_apps(output: str) -> list[str]:
    """The other apps whose Redis settings the host's redis.conf includes (a check run lists them)."""
    return [line.removeprefix("other=") for line in output.splitlines() if line.startswith("other=")]


def refuse_shared(config: Config, host: str, others: list[str]) -> None:
    """One redis-server per host: another app's settings there and this app's would replace each other's
    (its bind address, TLS certificate and CA, admin user). RedisError naming both apps, and the ways out."""
    if not others:
        return
    app = config.app.name
    other = others[0]
    raise RedisError(
        f"services.redis: redis-server on {host} already serves the app {other} (its settings "
        f"/etc/deploy/{other}/services/redis.conf are included by {layout.REDIS_CONF}); {app}'s would "
        f"replace {other}'s (bind address, TLS certificate and CA, admin user) and break it. Give {app} "
        f"its Redis on another host (services.redis.host), or leave services.redis out of {app}'s "
        f"deploy.yaml and set its REDIS_URL to a database of {other}'s Redis yourself. If {other} no "
        f"longer uses Redis, remove its 'include' line from {layout.REDIS_CONF} on {host} first"
    )


def setup_step(config: Config, found: list[str]) -> Step | None:
    """The step that sets Redis up on its host, for the `found` changes (None: nothing differs)."""
    if not found:
        return None
    actions: list[Command | Upload] = [cmd.make_dir(layout.services_dir(config), "root", "root", 0o755)]
    if "configuration" in found:
        staged = layout.redis_dropin(config) + ".new"
        actions.append(
            Upload(staged, dropin(config).encode(), 0o600, "root", "root", description="Redis settings")
        )
    actions.append(setup_command(config, "apply"))
    return Step(f"redis ({', '.join(found)})", service_host(config), tuple(actions))


def read_command(config: Config) -> Command:
    """Print the credentials file and the CA certificate (read into memory, never shown)."""
    env = layout.service_env_file(config, "redis")
    ca = layout.redis_ca_cert(config)
    return Command(
        (
            "sh",
            "-c",
            'cat -- "$1" 2>/dev/null || true; echo "--ca--"; cat -- "$2" 2>/dev/null || true',
            "read",
            env,
            ca,
        ),
        "Redis: read the app's credentials",
        sudo=True,
    )


def parse_credentials(text: str) -> Credentials | None:
    """The credentials in `read_command`'s output (None: the service host has none yet)."""
    env, _, ca = text.partition("--ca--\n")
    values = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
    if not values.get("REDIS_PASSWORD") or not values.get("REDIS_USER"):
        return None
    return Credentials(
        values["REDIS_USER"], values["REDIS_PASSWORD"], ca.strip() + "\n" if ca.strip() else None
    )


def url(config: Config, credentials: Credentials | None) -> str:
    """The app's REDIS_URL: rediss:// verifying deploy's CA and the host's name with network tls."""
    redis = config.services.redis
    assert redis is not None
    if credentials is None:
        return NOT_YET
    where = address(config)
    try:
        if ipaddress.ip_address(where).version == 6:
            where = f"[{where}]"
    except ValueError:
        pass
    auth = f"{quote(credentials.user, safe='')}:{quote(credentials.password, safe='')}"
    if redis.network == "private":
        return f"redis://{auth}@{where}:{layout.REDIS_PORT}/0"
    query = urlencode(
        {
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": layout.redis_ca_cert(config),
            "ssl_check_hostname": "true",
        }
    )
    return f"rediss://{auth}@{where}:{layout.REDIS_PORT}/0?{query}"


def ca_steps(config: Config, hosts: list[str], found: Mapping[str, str | None], ca_pem: str) -> list[Step]:
    """Copy the CA certificate to every app host whose copy (`found`: its text, None if absent) differs."""
    target = layout.redis_ca_cert(config)
    return [
        Step(
            "redis CA certificate",
            host,
            (
                cmd.make_dir(f"/etc/{config.app.name}", "root", "root", 0o755),
                Upload(target, ca_pem.encode(), 0o644, "root", "root", description="deploy's services CA"),
            ),
        )
        for host in hosts
        if found.get(host) != ca_pem and host != service_host(config)
    ]


def read_ca_command(config: Config) -> Command:
    path = layout.redis_ca_cert(config)
    return Command(
        ("sh", "-c", 'cat -- "$1" 2>/dev/null || true', "read", path), "Redis: the CA copy", sudo=False
    )


@dataclass
class Prepared:
    """What prepare_redis did or would do, and the app's variable."""

    steps: list[Step]
    env: dict[str, str]
    credentials: Credentials | None


def prepare_redis(
    config: Config,
    executor: Executor,
    hosts: list[str],
    apply: bool,
    run: Callable[[Step], str],
) -> Prepared:
    """Set Redis up (apply) or plan it (not apply), then read its credentials into the app's variable.

    `run` runs one step and returns its output (it raises when the step fails)."""
    redis = config.services.redis
    assert redis is not None
    host = service_host(config)
    checked = executor.gather(host, setup_command(config, "check"))
    refuse_shared(config, host, other_apps(checked))
    step = setup_step(config, changes(checked))
    steps = [step] if step else []
    if apply and step:
        run(step)
    credentials = parse_credentials(executor.gather(host, read_command(config)))
    if redis.network == "tls" and credentials is not None and credentials.ca_pem:
        found = {h: (executor.gather(h, read_ca_command(config)) or None) for h in hosts if h != host}
        copies = ca_steps(config, hosts, found, credentials.ca_pem)
        steps += copies
        if apply:
            for copy in copies:
                run(copy)
    return Prepared(steps, {redis.env: url(config, credentials)}, credentials)


def require_credentials(config: Config, executor: Executor) -> dict[str, str]:
    """The app's variable for a push: Redis must have been set up (RedisError otherwise)."""
    redis = config.services.redis
    assert redis is not None
    host = service_host(config)
    credentials = parse_credentials(executor.gather(host, read_command(config)))
    if credentials is None:
        raise RedisError(
            f"services.redis: {host} has no Redis credentials for {config.app.name} yet: "
            "run 'deploy setup' first"
        )
    return {redis.env: url(config, credentials)}


def redactions(env: Mapping[str, str]) -> dict[str, str]:
    """What output must hide: the variables' values and, on its own, each password in them."""
    out = dict(env)
    for name, value in env.items():
        password = urlsplit(value).password
        if password:
            out[f"{name} password"] = unquote(password)
    return out
