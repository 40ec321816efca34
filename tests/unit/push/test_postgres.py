"""services.postgres without hosts: config errors (file, line, key), the drop-in and pg_hba as exact
texts, memory bounds, restart vs reload, the setup steps as data, the URL the app gets."""

from __future__ import annotations

import base64

import pytest

from deploy.config.loader import ConfigError, load_text
from deploy.config.model import Config
from deploy.plan import Command, Upload
from deploy.push import postgres

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: flask-r
  wsgi: "flaskr:create_app()"
server:
  domains: [flaskr.example.com]
  hosts: [10.0.0.1, 10.0.0.2]
"""


def config(services: str = "services:\n  postgres: {}\n", base: str = BASE) -> Config:
    return load_text(base + services, "deploy.yaml")


def errors(services: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config(services, base)
    return [str(problem) for problem in caught.value.problems]


def test_defaults_resolve_to_the_first_host_tls_and_the_app_name() -> None:
    pg = postgres.settings(config("services:\n  postgres:\n"))
    assert pg is not None
    assert (pg.host, pg.database, pg.user, pg.network, pg.env) == (
        "10.0.0.1",
        "flask_r",
        "flask_r",
        "tls",
        "DATABASE_URL",
    )
    assert postgres.settings(config("")) is None


def test_one_host_that_is_the_service_host_talks_over_localhost() -> None:
    one = BASE.replace("[10.0.0.1, 10.0.0.2]", "[10.0.0.1]")
    pg = postgres.settings(config("services:\n  postgres: {network: tls}\n", one))
    assert pg is not None and pg.network == "local"


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        (
            "services:\n  postgres: {host: 10.0.0.9}\n",
            "deploy.yaml:8: services.postgres.host: '10.0.0.9' is none of server.hosts (10.0.0.1, 10.0.0.2)",
        ),
        ("services:\n  postgres:\n    database: template1\n", "deploy.yaml:9: services.postgres.database: "),
        (
            'services:\n  postgres:\n    user: "x; DROP"\n',
            "deploy.yaml:9: services.postgres.user: expected a",
        ),
        (
            "services:\n  postgres:\n    max_connections: 10\n",
            "deploy.yaml:9: services.postgres.max_connections",
        ),
        ("services:\n  postgres:\n    network: public\n", "deploy.yaml:9: services.postgres.network"),
        ("services:\n  postgres:\n    port: 5433\n", "deploy.yaml:9: services.postgres.port"),
    ],
)
def test_bad_values_name_file_line_and_key(services: str, expected: str) -> None:
    assert any(line.startswith(expected) for line in errors(services)), errors(services)


def test_the_env_name_is_not_one_of_the_apps_own() -> None:
    base = BASE.replace('create_app()"\n', 'create_app()"\n  secrets: [DATABASE_URL]\n')
    assert errors("services:\n  postgres: {}\n", base) == [
        "deploy.yaml:9: services.postgres.env: DATABASE_URL is also in app.env or app.secrets; deploy "
        "writes DATABASE_URL itself: remove it there, or name another variable here"
    ]


def test_over_the_network_the_hosts_are_ip_addresses() -> None:
    base = BASE.replace("[10.0.0.1, 10.0.0.2]", "[10.0.0.1, db.example.com]")
    assert any(
        "give the addresses of db.example.com" in e for e in errors("services:\n  postgres: {}\n", base)
    )


def test_pg_hba_admits_the_app_role_from_each_app_host_only() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    assert postgres.pg_hba(cfg, pg) == (
        "# Written by deploy (services.postgres of flask-r): only the app's hosts get in.\n"
        "# TYPE   DATABASE  USER  ADDRESS  METHOD\n"
        "local  all  postgres  peer\n"
        "hostssl  flask_r  flask_r  10.0.0.1/32  scram-sha-256\n"
        "hostssl  flask_r  flask_r  10.0.0.2/32  scram-sha-256\n"
        "local  all  all  reject\n"
        "host  all  all  0.0.0.0/0  reject\n"
        "host  all  all  ::/0  reject\n"
    )
    private = config("services:\n  postgres: {network: private}\n")
    pg = postgres.settings(private)
    assert pg is not None
    assert "host  flask_r  flask_r  10.0.0.2/32  scram-sha-256\n" in postgres.pg_hba(private, pg)


def test_the_dropin_listens_on_localhost_and_the_service_address_never_everywhere() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    assert postgres.dropin(cfg, pg, 4 * 1024 * 1024) == (
        "# Written by deploy (services.postgres of flask-r); the next setup replaces edits.\n"
        "listen_addresses = 'localhost,10.0.0.1'\n"
        "port = 5432\n"
        "max_connections = 100\n"
        "password_encryption = 'scram-sha-256'\n"
        "shared_buffers = '1024MB'\n"
        "effective_cache_size = '3072MB'\n"
        "work_mem = '10MB'\n"
        "maintenance_work_mem = '256MB'\n"
        "ssl = on\n"
        "ssl_cert_file = '/var/lib/postgresql/deploy-flask-r/server.crt'\n"
        "ssl_key_file = '/var/lib/postgresql/deploy-flask-r/server.key'\n"
        "ssl_min_protocol_version = 'TLSv1.2'\n"
    )


@pytest.mark.parametrize(
    ("ram_gb", "shared", "work"),
    [(0.25, "128MB", "4MB"), (2, "512MB", "5MB"), (64, "8192MB", "64MB"), (1024, "8192MB", "64MB")],
)
def test_memory_stays_within_safe_bounds(ram_gb: float, shared: str, work: str) -> None:
    tuned = postgres.memory(int(ram_gb * 1024 * 1024), 100)
    assert (tuned["shared_buffers"], tuned["work_mem"]) == (shared, work)


def test_a_changed_listen_address_needs_a_restart_memory_a_reload_is_not_enough() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    now = postgres.dropin(cfg, pg, 4 * 1024 * 1024)
    assert postgres.needs_restart(None, now) == []
    assert postgres.needs_restart(now, now) == []
    assert postgres.needs_restart(now.replace("localhost,", ""), now) == ["listen_addresses"]
    other = postgres.dropin(cfg, pg, 8 * 1024 * 1024)
    assert postgres.needs_restart(now, other) == ["shared_buffers"]


def facts(cfg: Config, **changes: object) -> postgres.Facts:
    pg = postgres.settings(cfg)
    assert pg is not None
    done = {
        "postgresql.conf": postgres.dropin(cfg, pg, 4 * 1024 * 1024),
        "pg_hba.conf": postgres.pg_hba(cfg, pg),
    }
    values: dict[str, object] = dict(
        installed=True, mem_kb=4 * 1024 * 1024, running=True, enabled=True, credentials=True, ca=True,
        server_cert=True, role=True, database=True, records=done,
    )  # fmt: skip
    return postgres.Facts(**{**values, **changes})  # type: ignore[arg-type]


def test_setup_steps_are_empty_when_everything_is_in_place() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    assert postgres.setup_steps(cfg, pg, facts(cfg)) == ()


def test_a_fresh_host_gets_the_package_the_files_and_the_apply_script() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    steps = postgres.setup_steps(
        cfg, pg, facts(cfg, installed=False, running=False, enabled=False, credentials=False, records={})
    )
    assert [(s.name, s.host) for s in steps] == [
        ("postgres package", "10.0.0.1"),
        ("postgres configuration", "10.0.0.1"),
        ("postgres", "10.0.0.1"),
    ]
    uploads = [a for a in steps[1].actions if isinstance(a, Upload)]
    assert [(u.remote_path, u.mode, u.owner) for u in uploads] == [
        ("/etc/deploy/flask-r/services/postgres/postgresql.conf", 0o600, None),
        ("/etc/deploy/flask-r/services/postgres/pg_hba.conf", 0o600, None),
    ]
    apply = steps[2].actions[0]
    assert isinstance(apply, Command) and apply.sudo
    assert apply.argv[3:] == (
        "postgres-apply", "flask-r", "flask_r", "flask_r", "/etc/deploy/flask-r/services/postgres",
        "/etc/deploy/flask-r/services/postgres.env", "/etc/deploy/flask-r/services/postgres-ca",
        "/var/lib/postgresql/deploy-flask-r", "yes", "10.0.0.1", "reload",
    )  # fmt: skip
    # No password anywhere in the plan: it is made on the host.
    assert not any("PASSWORD" in part for step in steps for a in step.actions if isinstance(a, Command)
                   for part in a.argv[3:])  # fmt: skip


def test_a_new_listen_address_is_a_restart_and_the_step_says_so() -> None:
    cfg = config()
    old = facts(cfg)
    records = {**old.records, "postgresql.conf": old.records["postgresql.conf"].replace(",10.0.0.1", "")}
    pg = postgres.settings(cfg)
    assert pg is not None
    steps = postgres.setup_steps(cfg, pg, facts(cfg, records=records))
    assert [s.name for s in steps] == [
        "postgres configuration",
        "postgres (restart: listen_addresses changed)",
    ]
    apply = steps[1].actions[0]
    assert isinstance(apply, Command) and apply.argv[-1] == "restart"


def test_the_probe_output_parses_into_facts() -> None:
    conf = "listen_addresses = 'localhost'\n"
    text = (
        "installed=yes\nmem_kb=2048000\nrunning=no\nenabled=yes\ncredentials=no\nca=no\nserver_cert=no\n"
        f"record_postgresql.conf={base64.b64encode(conf.encode()).decode()}\nrole=1\ndatabase=0\n"
    )
    parsed = postgres.parse_facts(text)
    assert (parsed.installed, parsed.mem_kb, parsed.running, parsed.role, parsed.database) == (
        True, 2048000, False, True, False,
    )  # fmt: skip
    assert parsed.records == {"postgresql.conf": conf}


def test_the_url_pins_deploys_ca_with_verify_full() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    creds = postgres.parse_credentials(
        "POSTGRES_USER=flask_r\nPOSTGRES_DB=flask_r\nPOSTGRES_PASSWORD=s3cr3t-_x\n\n"
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    assert creds is not None
    assert creds.url(cfg, pg) == (
        "postgresql://flask_r:s3cr3t-_x@10.0.0.1:5432/flask_r"
        "?sslmode=verify-full&sslrootcert=/etc/flask-r/postgres-ca.crt"
    )
    assert creds.ca_certificate == "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    steps = postgres.ca_steps(cfg, pg, creds, {"10.0.0.1": creds.ca_certificate})
    assert [s.host for s in steps] == ["10.0.0.2"]
    private = config("services:\n  postgres: {network: private}\n")
    pg = postgres.settings(private)
    assert pg is not None
    assert creds.url(private, pg) == "postgresql://flask_r:s3cr3t-_x@10.0.0.1:5432/flask_r"
    one = config(base=BASE.replace("[10.0.0.1, 10.0.0.2]", "[10.0.0.1]"))
    pg = postgres.settings(one)
    assert pg is not None
    assert creds.url(one, pg) == "postgresql://flask_r:s3cr3t-_x@localhost:5432/flask_r"
    assert postgres.parse_credentials("") is None


def test_a_cluster_another_app_configured_is_refused_not_taken_over() -> None:
    cfg = config()
    pg = postgres.settings(cfg)
    assert pg is not None
    with pytest.raises(postgres.PostgresError, match=r"pg_hba\.conf belongs to the app 'shop'"):
        postgres.setup_steps(cfg, pg, facts(cfg, hba_owner="shop"))
    assert postgres.setup_steps(cfg, pg, facts(cfg, hba_owner="flask-r")) == ()
    assert postgres.parse_facts("hba_owner=shop\n").hba_owner == "shop"


class FakeHost:
    """An executor whose service host has no credentials yet."""

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        return 1, "cat: /etc/deploy/flask-r/services/postgres.env: No such file or directory"


def test_push_before_setup_says_to_run_setup() -> None:
    from deploy.push import services

    with pytest.raises(services.ServiceError) as caught:
        services.app_env(config(), FakeHost())  # type: ignore[arg-type]
    assert str(caught.value) == (
        "10.0.0.1: services.postgres has no credentials yet (/etc/deploy/flask-r/services/postgres.env): "
        "run 'deploy setup' first"
    )
    assert services.app_env(config(""), FakeHost()) == ({}, {})  # type: ignore[arg-type]
