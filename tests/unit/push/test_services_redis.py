"""services.redis without hosts: the config's meaning, the drop-in Redis includes, the steps and the URL."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pytest

from deploy.config.loader import ConfigError, load_text
from deploy.config.model import Config
from deploy.plan import Command, Step, Upload
from deploy.push import services_redis as redis
from deploy.remote.executor import Executor

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  secrets: [SECRET_KEY]
server:
  domains: [shop.example.com]
  hosts: [10.0.0.1, 10.0.0.2]
services:
"""


def config(redis_yaml: str = "{}") -> Config:
    """BASE with services.redis: a flow mapping ("{...}") or indented lines below `redis:`."""
    flow = redis_yaml.startswith("{")
    return load_text(BASE + (f"  redis: {redis_yaml}\n" if flow else f"  redis:\n{redis_yaml}"))


def problems(redis_yaml: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(redis_yaml)
    return [str(p) for p in info.value.problems]


# --- config ---------------------------------------------------------------------------------------


def test_redis_takes_every_default() -> None:
    found = config().services.redis
    assert found is not None
    assert (found.host, found.persistence, found.durable, found.maxmemory, found.network, found.env) == (
        None,
        "rdb",
        False,
        None,
        "tls",
        "REDIS_URL",
    )
    assert load_text(BASE.replace("services:\n", "")).services.redis is None


def test_a_host_that_is_not_an_app_host_is_an_error_with_its_line() -> None:
    assert problems("{host: 10.0.0.9}") == [
        "deploy.yaml:9: services.redis.host: '10.0.0.9' is none of server.hosts (10.0.0.1, 10.0.0.2)"
    ]


def test_durable_data_needs_persistence() -> None:
    assert problems("    persistence: none\n    durable: true\n") == [
        "deploy.yaml:11: services.redis.durable: durable: true needs persistence rdb or aof: none keeps "
        "nothing to back up"
    ]


@pytest.mark.parametrize("bad", ["12zb", "0mb", "-1", "256 mb", "1e9"])
def test_maxmemory_must_be_a_redis_size(bad: str) -> None:
    assert problems(f'{{maxmemory: "{bad}"}}') == [
        "deploy.yaml:9: services.redis.maxmemory: expected a Redis memory size such as 256mb or 1gb, "
        f"got {bad!r}"
    ]


def test_persistence_and_network_are_closed_choices() -> None:
    assert "services.redis.persistence" in problems("{persistence: always}")[0]
    assert "services.redis.network" in problems("{network: public}")[0]


def test_the_variable_must_not_be_one_the_app_sets() -> None:
    assert problems("{env: SECRET_KEY}") == [
        "deploy.yaml:9: services.redis.env: SECRET_KEY is also in app.env or app.secrets; deploy writes "
        "SECRET_KEY itself: remove it there, or name another variable here"
    ]


# --- the drop-in ----------------------------------------------------------------------------------


def test_the_drop_in_with_tls_binds_loopback_and_the_host_only_and_turns_plain_off() -> None:
    assert redis.dropin(config("{maxmemory: 256MB}")) == textwrap.dedent(
        """\
        # Written by deploy for the app shop (deploy.yaml services.redis).
        # A change restarts redis-server: Redis has no reload.
        bind 127.0.0.1 10.0.0.1
        protected-mode yes
        unixsocket /run/redis/redis-server.sock
        unixsocketperm 700
        port 0
        tls-port 6379
        tls-cert-file /etc/deploy/shop/services/redis-tls/redis.crt
        tls-key-file /etc/deploy/shop/services/redis-tls/redis.key
        tls-ca-cert-file /etc/shop/redis-ca.crt
        tls-auth-clients no
        tls-protocols "TLSv1.2 TLSv1.3"
        save 3600 1 300 100 60 10000
        appendonly no
        maxmemory 256mb
        maxmemory-policy noeviction
        include /etc/deploy/shop/services/redis-users.conf
        """
    )


def test_the_drop_in_on_a_private_network_with_aof_on_the_second_host() -> None:
    assert redis.dropin(config("{network: private, persistence: aof, host: 10.0.0.2}")) == textwrap.dedent(
        """\
        # Written by deploy for the app shop (deploy.yaml services.redis).
        # A change restarts redis-server: Redis has no reload.
        bind 127.0.0.1 10.0.0.2
        protected-mode yes
        unixsocket /run/redis/redis-server.sock
        unixsocketperm 700
        port 6379
        tls-port 0
        save 3600 1 300 100 60 10000
        appendonly yes
        appendfsync everysec
        include /etc/deploy/shop/services/redis-users.conf
        """
    )


def test_no_persistence_saves_nothing() -> None:
    text = redis.dropin(config("{persistence: none}"))
    assert 'save ""\nappendonly no\n' in text
    assert "0.0.0.0" not in text and "bind 127.0.0.1 10.0.0.1\n" in text


# --- steps ----------------------------------------------------------------------------------------


def test_nothing_differs_no_step() -> None:
    assert redis.setup_step(config(), []) is None
    assert redis.changes("installed\nchange=new credentials\nchange=start redis-server\n") == [
        "new credentials",
        "start redis-server",
    ]


def test_the_setup_step_stages_the_drop_in_only_when_it_changed_and_carries_no_secret() -> None:
    conf = config()
    step = redis.setup_step(conf, ["configuration", "start redis-server"])
    assert step is not None
    assert (step.name, step.host) == ("redis (configuration, start redis-server)", "10.0.0.1")
    make_dir, upload, script = step.actions
    assert isinstance(make_dir, Command) and make_dir.argv[-4:] == (
        "/etc/deploy/shop/services",
        "root",
        "root",
        "0755",
    )
    assert isinstance(upload, Upload)
    assert (upload.remote_path, upload.mode, upload.owner) == (
        "/etc/deploy/shop/services/redis.conf.new",
        0o600,
        "root",
    )
    assert upload.content == redis.dropin(conf).encode()
    assert isinstance(script, Command) and script.sudo
    assert script.argv[:3] == ("sh", "-c", redis.REDIS_SETUP)
    assert script.argv[3:] == (
        "redis-setup",
        "apply",
        "shop",
        "shop",
        "10.0.0.1",
        "tls",
        hashlib.sha256(redis.dropin(conf).encode()).hexdigest(),
    )
    only_start = redis.setup_step(conf, ["start redis-server"])
    assert only_start is not None
    assert not any(isinstance(a, Upload) for a in only_start.actions)


def test_the_host_script_makes_the_password_from_urandom_and_keeps_only_its_hash_in_redis() -> None:
    text = redis.REDIS_SETUP
    assert "/dev/urandom" in text
    assert "user default reset off" in text
    assert "user %s reset on #%s ~* &* +@all -@admin +client|list" in text
    assert "config set appendonly yes" in text
    assert "systemctl restart redis-server" in text


# --- credentials and the URL ----------------------------------------------------------------------

CA = "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
READ = f"REDIS_USER=shop\nREDIS_PASSWORD=Pa55wordPa55wordPa55word\n--ca--\n{CA}"


def test_credentials_are_parsed_and_absent_ones_are_none() -> None:
    found = redis.parse_credentials(READ)
    assert found == redis.Credentials(
        "shop", "Pa55wordPa55wordPa55word", "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
    )
    assert redis.parse_credentials("--ca--\n") is None


def test_the_url_with_tls_verifies_deploys_ca_and_the_hostname() -> None:
    value = redis.url(config(), redis.parse_credentials(READ))
    parts = urlsplit(value)
    assert (parts.scheme, parts.username, parts.password, parts.hostname, parts.port, parts.path) == (
        "rediss",
        "shop",
        "Pa55wordPa55wordPa55word",
        "10.0.0.1",
        6379,
        "/0",
    )
    assert parse_qs(parts.query) == {
        "ssl_cert_reqs": ["required"],
        "ssl_ca_certs": ["/etc/shop/redis-ca.crt"],
        "ssl_check_hostname": ["true"],
    }


def test_the_url_on_a_private_network_is_plain_and_quotes_the_password() -> None:
    creds = redis.Credentials("shop", "a/b:c@d", None)
    assert redis.url(config("{network: private}"), creds) == "redis://shop:a%2Fb%3Ac%40d@10.0.0.1:6379/0"
    assert redis.url(config(), None) == redis.NOT_YET


class FakeExecutor:
    """Answers the check, read and CA-copy commands by their description."""

    def __init__(self, check: str, read: str, copies: dict[str, str]):
        self.answers = {"Redis: what differs": check, "Redis: read the app's credentials": read}
        self.copies = copies

    def gather(self, host: str, command: Command) -> str:
        if command.description == "Redis: the CA copy":
            return self.copies.get(host, "")
        return self.answers[command.description]


def fake(check: str, read: str, copies: dict[str, str] | None = None) -> Executor:
    return cast(Executor, FakeExecutor(check, read, copies or {}))


HOSTS = ["10.0.0.1", "10.0.0.2"]


def test_prepare_applies_the_setup_then_copies_the_ca_to_the_other_app_hosts() -> None:
    ran: list[Step] = []

    def run(step: Step) -> str:
        ran.append(step)
        return ""

    done = redis.prepare_redis(config(), fake("change=new credentials\n", READ), HOSTS, True, run)
    assert [(s.name, s.host) for s in ran] == [
        ("redis (new credentials)", "10.0.0.1"),
        ("redis CA certificate", "10.0.0.2"),
    ]
    upload = ran[1].actions[1]
    assert isinstance(upload, Upload) and upload.remote_path == "/etc/shop/redis-ca.crt"
    assert (upload.mode, upload.content) == (0o644, CA.encode())
    assert done.env == {"REDIS_URL": redis.url(config(), redis.parse_credentials(READ))}


def test_prepare_on_a_set_up_host_changes_nothing_and_a_dry_run_runs_nothing() -> None:
    done = redis.prepare_redis(config(), fake("", READ, {"10.0.0.2": CA}), HOSTS, True, _never)
    assert done.steps == []
    planned = redis.prepare_redis(config(), fake("change=configuration\n", "--ca--\n"), HOSTS, False, _never)
    assert [s.name for s in planned.steps] == ["redis (configuration)"]
    assert planned.env == {"REDIS_URL": redis.NOT_YET}


def test_a_push_before_setup_says_to_run_setup() -> None:
    with pytest.raises(redis.RedisError, match="run 'deploy setup' first"):
        redis.require_credentials(config(), fake("", "--ca--\n"))
    assert redis.require_credentials(config(), fake("", READ)) == {
        "REDIS_URL": redis.url(config(), redis.parse_credentials(READ))
    }


def _never(step: Step) -> str:
    raise AssertionError(f"ran {step.name}")


def test_services_credentials_without_redis_in_deploy_yaml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(BASE.replace("services:\n", ""), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "services", "credentials", "--service", "redis"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "services.redis: not in deploy.yaml: there is nothing to show" in out.stderr
    assert out.stdout == ""


# --- one redis-server per host --------------------------------------------------------------------

REDIS_CONF = """\
bind 127.0.0.1 -::1
# deploy: the settings of the app celapp
include /etc/deploy/celapp/services/redis.conf
"""


@pytest.mark.parametrize(
    ("conf", "others"),
    [
        (REDIS_CONF, ["celapp"]),
        (REDIS_CONF.replace("celapp", "shop"), []),  # its own settings: set up again as before
        ("bind 127.0.0.1\n", []),
        (REDIS_CONF + "include /etc/deploy/shop/services/redis.conf\n", ["celapp"]),
        ("# include /etc/deploy/celapp/services/redis.conf\n", []),  # a comment names no app
    ],
)
def test_the_host_script_names_the_other_apps_whose_settings_redis_conf_includes(
    tmp_path: Path, conf: str, others: list[str]
) -> None:
    """The check run lists them from what the host records (redis.conf's include lines), and the
    apply run refuses before it changes anything."""
    (tmp_path / "redis.conf").write_text(conf, encoding="utf-8")
    script = redis.REDIS_SETUP.replace("conf=/etc/redis/redis.conf", f"conf={tmp_path}/redis.conf")
    assert script != redis.REDIS_SETUP
    argv = [*redis.setup_command(config(), "check").argv]
    argv[2] = script
    # A check run reads and changes nothing: it runs here whole when no other app is found.
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and redis.other_apps(out.stdout) == others, out.stdout + out.stderr
    if not others:
        assert "change=" in out.stdout  # it went on to what differs for shop
        return
    argv[4] = "apply"
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "already has the settings of another app (celapp)" in out.stdout
    assert (tmp_path / "redis.conf").read_text(encoding="utf-8") == conf


def test_setup_refuses_a_redis_server_that_serves_another_app_naming_both() -> None:
    with pytest.raises(redis.RedisError) as info:
        redis.prepare_redis(config(), fake("other=celapp\nchange=configuration\n", READ), HOSTS, True, _never)
    message = str(info.value)
    assert message.startswith("services.redis: redis-server on 10.0.0.1 already serves the app celapp")
    assert "shop's would replace celapp's" in message and "services.redis.host" in message
    assert "/etc/deploy/celapp/services/redis.conf" in message
