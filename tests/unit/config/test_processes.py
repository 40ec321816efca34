"""processes: and host roles in deploy.yaml: defaults, short forms, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import ConfigError, load_text

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: shop
  wsgi: shop:app
server:
  domains: [shop.example.com]
  hosts:
    - 10.0.0.1
    - address: 10.0.0.2
      roles: [worker]
    - address: 10.0.0.3
      roles: [web, worker]
"""


def load(extra: str):  # type: ignore[no-untyped-def]
    return load_text(BASE + extra, "deploy.yaml")


def problems(extra: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(extra)
    return [(p.line, ".".join(str(k) for k in p.path), p.message) for p in info.value.problems]


def test_defaults_and_where_each_process_runs() -> None:
    config = load(
        "processes:\n"
        "  worker: {command: rq worker, hosts: worker, instances: 2}\n"
        "  beat: {command: celery beat, singleton: true, hosts: worker}\n"
        "  loop: {command: flask loop}\n"
        "  one: {command: flask one, hosts: first}\n"
    )
    worker = config.processes["worker"]
    assert (worker.stop_signal, worker.stop_timeout, worker.settle, worker.ready.kind) == (
        "SIGTERM",
        60,
        5,
        "settle",
    )
    assert [h.roles for h in config.server.hosts] == [["web"], ["worker"], ["web", "worker"]]
    assert config.process_hosts("worker") == ["10.0.0.2", "10.0.0.3"]
    assert config.process_hosts("beat") == ["10.0.0.2"]
    assert config.process_hosts("loop") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert config.process_hosts("one") == ["10.0.0.1"]


@pytest.mark.parametrize(
    ("ready", "kind", "field"),
    [
        ("rq", "rq", None),
        ("{kind: celery}", "celery", None),
        ("{heartbeat: /run/shop/beat}", "heartbeat", "/run/shop/beat"),
        ("{command: rq info --url $REDIS_URL}", "command", "rq info --url $REDIS_URL"),
    ],
)
def test_ready_short_forms(ready: str, kind: str, field: str | None) -> None:
    config = load(f"processes:\n  worker:\n    command: rq worker\n    ready: {ready}\n")
    got = config.processes["worker"].ready
    assert got.kind == kind
    assert field in (None, got.heartbeat, got.command)


@pytest.mark.parametrize(
    ("extra", "line", "key", "says"),
    [
        (
            "processes:\n  beat:\n    command: celery beat\n    singleton: true\n    instances: 2\n",
            16,
            "processes.beat.instances",
            "exactly one instance",
        ),
        (
            "processes:\n  worker:\n    command: rq worker\n    hosts: workers\n",
            15,
            "processes.worker.hosts",
            "no host has the role 'workers'",
        ),
        ("processes:\n  web:\n    command: gunicorn x\n", 13, "processes.web", "`web` is the app itself"),
        ("processes:\n  Worker:\n    command: x\n", 13, "processes.Worker", "short lower-case name"),
        ("processes:\n  w:\n    command: x\n    stop_signal: SIGKILL\n", 15, "processes.w.stop_signal", ""),
        ("processes:\n  w:\n    command: x\n    memory_max: lots\n", 15, "processes.w.memory_max", "512M"),
        (
            "processes:\n  w:\n    command: x\n    ready: {kind: command}\n",
            15,
            "processes.w.ready",
            "command",
        ),
        ("processes:\n  w:\n    command: ''\n", 14, "processes.w.command", ""),
    ],
)
def test_a_wrong_process_names_its_key_and_line(extra: str, line: int, key: str, says: str) -> None:
    found = problems(extra)
    assert any(k.startswith(key) and says in m and n == line for n, k, m in found), found


def test_a_host_without_roles_is_a_web_host_and_roles_are_unique() -> None:
    with pytest.raises(ConfigError) as info:
        load_text(BASE.replace("roles: [worker]", "roles: [worker, worker]"), "deploy.yaml")
    assert "listed twice" in str(info.value)


def test_the_cli_refuses_a_singleton_with_two_instances_with_exit_2(tmp_path: Path) -> None:
    extra = "processes:\n  beat:\n    command: celery beat\n    singleton: true\n    instances: 2\n"
    (tmp_path / "deploy.yaml").write_text(BASE + extra, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out
    assert "deploy.yaml:16" in out.stderr and "processes.beat.instances" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_hosts_are_named_as_plans_name_them_with_a_port_when_not_the_default() -> None:
    config = load_text(
        BASE.replace("    - 10.0.0.1\n", "    - deploy@10.0.0.1:2222\n")
        + "processes:\n  beat: {command: celery beat, singleton: true}\n",
        "deploy.yaml",
    )
    assert config.process_hosts("beat") == ["10.0.0.1:2222"]
