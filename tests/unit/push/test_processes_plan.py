"""Processes beside web in push and rollback plans, as data: the exact steps, without hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.plan import Command, Step, Upload
from deploy.push.plan_push import push_plan
from deploy.push.plan_rollback import rollback_plan
from deploy.push.processes import PROCESS_READY, probe_command
from deploy.push.rollout import Rollout
from deploy.remote.executor import Recorder, StepResult
from deploy.remote.facts import HostState
from deploy.remote.facts import probe_command as facts_probe
from deploy.render.render import render
from tests.unit.push.test_plans import SECRETS, build, lines, served_state
from tests.unit.push.test_plans import YAML as PLANS_YAML

pytestmark = pytest.mark.unit

YAML = PLANS_YAML.replace("hosts: [web1, web2, web3]", "hosts: [web1, {address: web2, roles: [web, worker]}]")
YAML += """\
processes:
  worker:
    command: rq worker --url "$REDIS_URL" default
    instances: 2
    hosts: worker
    stop_timeout: 600
    ready: rq
  beat:
    command: celery -A tasks beat
    singleton: true
    stop_signal: SIGINT
"""
CONFIG = load_text(YAML)


def hosts(**changes: object) -> dict[str, HostState]:
    """web1 and web2 serving r2 from the blue slot (r1 before it); beat's blue instance runs on web1."""
    web1 = served_state()["web1"]
    units = {"shop@blue.service": "active", "shop-beat@blue-1.service": "active"}
    out = {"web1": replace(web1, services=units), "web2": replace(web1, host="web2")}
    return {h: replace(s, **changes) for h, s in out.items()}  # type: ignore[arg-type]


def plan_for(action: str = "push"):  # type: ignore[no-untyped-def]
    states = hosts()
    if action == "rollback":
        return rollback_plan(CONFIG, states, None)
    rendered = {h: render(CONFIG, s.facts) for h, s in states.items()}
    return push_plan(CONFIG, states, rendered, SECRETS, build(code=b"print('v2')\n"))


def ready_plan(step: Step) -> dict[str, object]:
    """The plan the processes step uploads (root's, 0600) and hands to the host program."""
    upload, command = step.actions
    assert isinstance(upload, Upload) and isinstance(command, Command)
    assert (upload.mode, upload.owner) == (0o600, "root")
    assert upload.remote_path == "/srv/shop/.deploy/processes-green.json"  # the new slot
    assert command.argv == ("python3", "-c", PROCESS_READY, upload.remote_path) and command.sudo
    return json.loads(upload.content)  # type: ignore[no-any-return]


def test_the_unit_templates_are_installed_then_systemd_reloads() -> None:
    (web1, _web2) = plan_for().hosts
    (unit_step,) = [s for s in web1.prepare if s.name == "systemd unit"]
    written = [a.remote_path for a in unit_step.actions if isinstance(a, Upload)]
    assert written == [
        "/etc/systemd/system/shop-worker@.service",
        "/etc/systemd/system/shop-beat@.service",
    ]  # the web unit is already the host's
    assert lines([unit_step])[-1].endswith("systemctl daemon-reload")


def test_a_push_starts_each_hosts_processes_after_the_web_health_gate() -> None:
    web1, web2 = plan_for().hosts
    assert [s.name for s in web1.start] == ["start", "health", "processes"]
    one, two = ready_plan(web1.start[2]), ready_plan(web2.start[2])
    # The singleton beat runs on web1 only: its blue instance stops before its green one starts.
    assert one["singletons"] == [["shop-beat@blue-1.service", "shop-beat@green-1.service"]]
    assert [c["unit"] for c in one["checks"]] == ["shop-beat@green-1.service"]  # type: ignore[index]
    assert one["stale"] == ["shop-beat@green-*.service"]
    # The worker runs on the hosts with the role worker: web2, two instances, ready by rq's probe.
    assert two["singletons"] == []
    checks = two["checks"]
    assert [c["unit"] for c in checks] == ["shop-worker@green-1.service", "shop-worker@green-2.service"]  # type: ignore[index]
    probe = checks[0]["probe"]  # type: ignore[index]
    assert probe[:3] == ["systemd-run", "--quiet", "--wait"]
    assert (
        "WorkingDirectory=/srv/shop/slots/green" in probe
        and "EnvironmentFile=-/srv/shop/slots/green.env" in probe
    )
    assert probe[-3:-1] == ["/bin/sh", "-c"]
    assert probe[-1].startswith(
        ': "${DEPLOY_MAIN_PID:?}"; out=$(rq info --only-workers --raw --url "$REDIS_URL")'
    )
    # Each instance's probe has the instance's own DEPLOY_PROCESS and DEPLOY_INSTANCE, as its unit.
    assert "--setenv=DEPLOY_PROCESS=worker" in probe
    assert [
        next(word for word in c["probe"] if word.startswith("--setenv=DEPLOY_INSTANCE="))  # type: ignore[index]
        for c in checks  # type: ignore[attr-defined]
    ] == ["--setenv=DEPLOY_INSTANCE=green-1", "--setenv=DEPLOY_INSTANCE=green-2"]
    assert (two["timeout"], two["stop_budget"]) == (5 + 30, 610)  # settle + max(30, health_timeout)


def test_the_switch_boots_the_new_instances_and_finish_stops_the_old_with_their_signal() -> None:
    web1, web2 = plan_for().hosts
    assert lines(web2.switch)[-1].endswith(
        "systemctl enable --quiet --no-reload shop-worker@green-1.service shop-worker@green-2.service"
    )
    finish = lines(web2.finish)
    assert finish[1].endswith(
        "systemctl stop --no-block 'shop-worker@blue-*.service' 'shop-beat@blue-*.service'"
    )
    assert "multi-user.target.wants" in finish[2] and "'shop-worker@blue-*.service'" in finish[2]
    assert "enable" not in " ".join(lines(web1.switch)[-1:]) or "shop-beat@green-1" in lines(web1.switch)[-1]


def test_a_failed_push_stops_the_new_processes_and_brings_the_old_singleton_back() -> None:
    web1, web2 = plan_for().hosts
    # abort (before the switch) and revert (after it): new instances stop first, then the singleton
    # that ran before the push starts again; web2 never ran it.
    for step in (web1.abort[-1], web1.revert[-1]):
        tail = lines([step])[-2:]
        assert tail[0].endswith("systemctl stop 'shop-beat@green-*.service'")
        assert tail[1].endswith("systemctl start shop-beat@blue-1.service")
    assert lines([web2.abort[-1]])[-1].endswith("systemctl stop 'shop-worker@green-*.service'")


def test_a_rollback_moves_the_processes_the_same_way() -> None:
    web1, web2 = plan_for("rollback").hosts
    assert web1.release == "20240102-000000-r1"
    assert [s.name for s in web1.start] == ["start", "health", "processes"]
    assert ready_plan(web1.start[2])["singletons"] == [
        ["shop-beat@blue-1.service", "shop-beat@green-1.service"]
    ]
    assert "systemctl stop --no-block" in lines(web2.finish)[1]


def test_no_processes_no_process_steps() -> None:
    states = served_state()
    plain = load_text(YAML.split("processes:")[0])
    plan = push_plan(plain, states, {h: render(plain, s.facts) for h, s in states.items()}, SECRETS, build())
    (web1,) = plan.hosts
    assert [s.name for s in web1.start] == ["start", "health"]
    assert not any("shop-" in line and "@blue-" in line for line in lines(web1.finish))


def test_the_facts_read_every_instance_state_and_unit_template() -> None:
    request = json.loads(facts_probe(CONFIG).argv[3])
    assert (
        "shop-worker@green-2.service" in request["units"] and "shop-beat@blue-1.service" in request["units"]
    )
    assert "/etc/systemd/system/shop-beat@.service" in request["files"]


@pytest.mark.parametrize(
    ("command", "ready", "probe"),
    [
        ("rq worker -u redis://r:6379/1 high", "rq", "rq info --only-workers --raw -u redis://r:6379/1"),
        ("rq worker high", "rq", "rq info --only-workers --raw"),
        (
            "celery -A proj worker -l info",
            "celery",
            'celery -A proj inspect ping --timeout 5 --destination "celery@$(hostname)"',
        ),
        (
            'celery --app=proj.app worker -n "w-$DEPLOY_INSTANCE@%h"',
            "celery",
            'celery --app=proj.app inspect ping --timeout 5 --destination "w-$DEPLOY_INSTANCE@$(hostname)"',
        ),
        ("flask loop", "{command: flask ready}", "flask ready"),
        ("flask loop", "settle", None),
    ],
)
def test_ready_made_probes_copy_the_broker_and_app_options(
    command: str, ready: str, probe: str | None
) -> None:
    config = load_text(
        YAML.split("processes:")[0] + f"processes:\n  w: {{command: {command!r}, ready: {ready}}}\n"
    )
    got = probe_command(config.processes["w"])
    if ready == "rq":  # the broker's options, then the search for the instance's own worker
        assert got is not None and f"out=$({probe})" in got
    else:
        assert got == probe


#: `rq info --only-workers --raw` as RQ 1.x (`NAME (HOST PID)`) and 2.x (`NAME (HOST IP PID)`) print it.
RQ_INFO = {
    "1.x": "worker 6124ab3c (web-1 4101) idle default\nworker 77aa01 (web-1 4102) busy default",
    "2.x": "worker 6124ab3c (web-1 10.0.0.5:4711 4101) idle default. jobs: 0 finished, 0 failed",
}


@pytest.mark.parametrize("version", sorted(RQ_INFO))
@pytest.mark.parametrize(
    ("host", "main_pid", "ready"),
    [
        ("web-1", "4101", True),  # this instance's worker
        ("web-1", "410", False),  # another process's number that is a prefix of it
        ("web-1", "999", False),  # another worker of the app (the old slot's) is registered, not this one
        ("web-2", "4101", False),  # the same process number on another host
    ],
)
def test_the_rq_probe_is_ready_only_once_the_instances_own_worker_is_registered(
    tmp_path: Path, version: str, host: str, main_pid: str, ready: bool
) -> None:
    """RQ names a worker with a random uuid: the probe finds the instance's by its host and the unit's
    main process, which RQ records with the worker; some worker of the app being there is not enough."""
    config = load_text(YAML)
    probe = probe_command(config.processes["worker"])
    assert probe is not None
    (tmp_path / "rq").write_text(f"#!/bin/sh\nprintf '{RQ_INFO[version]}\\n'\n", encoding="utf-8")
    (tmp_path / "hostname").write_text(f"#!/bin/sh\necho {host}\n", encoding="utf-8")
    for tool in ("rq", "hostname"):
        (tmp_path / tool).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "DEPLOY_MAIN_PID": main_pid, "REDIS_URL": "redis://r"}
    out = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, env=env, timeout=30)
    assert (out.returncode == 0) is ready, out.stdout + out.stderr
    if not ready:
        assert f"no RQ worker of this instance (host {host}, pid {main_pid}) is registered yet" in out.stdout


def test_the_rq_probe_fails_with_rqs_own_words_when_the_broker_does_not_answer(tmp_path: Path) -> None:
    config = load_text(YAML)
    probe = probe_command(config.processes["worker"])
    assert probe is not None
    (tmp_path / "rq").write_text(
        "#!/bin/sh\necho 'Error 111 connecting to r:6379'\nexit 1\n", encoding="utf-8"
    )
    (tmp_path / "rq").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "DEPLOY_MAIN_PID": "1", "REDIS_URL": "redis://r"}
    out = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 1 and out.stdout == "Error 111 connecting to r:6379\n"
    # Without the main process's number (not run by process_ready.py) it refuses, rather than guess.
    del env["DEPLOY_MAIN_PID"]
    out = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode != 0 and "DEPLOY_MAIN_PID" in out.stderr


@pytest.mark.parametrize(
    ("command", "node"),
    [
        ("celery -A p worker", "celery@web-1.example.org"),
        ("celery -A p worker -n w1", "w1@web-1.example.org"),
        ('celery -A p worker -n "w-$DEPLOY_INSTANCE@%h"', "w-green-2@web-1.example.org"),
        ("celery -A p worker --hostname=w-%n.%d@x%%", "w-web-1.example.org@x%"),
        ("celery -A p worker -n 'a\"`b@%n'", 'a"`b@web-1'),
    ],
)
def test_the_celery_probe_pings_the_node_name_of_its_own_instance(command: str, node: str) -> None:
    """On the host, the shell word is the name Celery gives the instance's node (host_format)."""
    from deploy.push.processes import celery_node

    word = celery_node(command)
    script = f"hostname() {{ echo web-1.example.org; }}; DEPLOY_INSTANCE=green-2; printf %s {word}"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == node


def test_status_lists_the_live_slots_instances_and_any_other_still_running() -> None:
    from deploy.layout import layout_for
    from deploy.push.processes import instance_states

    services = {
        "shop-worker@green-1.service": "active",
        "shop-worker@green-2.service": "failed",
        "shop-worker@blue-1.service": "deactivating",  # an old one finishing its job
        "shop-beat@green-1.service": "inactive",
    }
    got = instance_states(CONFIG, layout_for(CONFIG), "web2", services, "green")
    assert [(i["unit"], i["state"]) for i in got] == [
        ("shop-worker@blue-1.service", "deactivating"),
        ("shop-worker@green-1.service", "active"),
        ("shop-worker@green-2.service", "failed"),
    ]  # beat runs on web1 only
    # web1 runs beat, not the worker: a worker instance is listed there only while it is not stopped.
    stopped = {unit: "inactive" for unit in services}
    web1 = instance_states(CONFIG, layout_for(CONFIG), "web1", stopped, "green")
    assert [(i["unit"], i["state"]) for i in web1] == [("shop-beat@green-1.service", "inactive")]


def test_logs_of_an_unknown_process_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(YAML, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "logs", "--process", "nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--process 'nope' is not one of the processes (worker, beat)" in out.stderr


GAP = "singleton: shop-beat@blue-1.service stopped in 0.4s, shop-beat@green-1.service started: a gap of 0.1s"


class FailingRecorder(Recorder):
    """Records steps; the processes step prints what the host program prints, or fails on `failing`."""

    def __init__(self, failing: str | None = None):
        super().__init__()
        self.failing = failing

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        if step.name != "processes":
            return result
        if host == self.failing:
            crashed = "shop-worker@green-1.service restarted"
            return StepResult(host, "processes", False, 1.0, crashed, "ready", 3)
        return replace(result, output=f"{GAP}\nready: shop-beat@green-1.service (settle)")


def test_a_rollout_says_the_singletons_gap_and_a_crashing_worker_sends_every_host_back() -> None:
    from deploy.layout import layout_for

    said: list[str] = []
    plan = plan_for()
    ok = Rollout(FailingRecorder(), plan, layout_for(CONFIG), say=said.append, parallel=False).run()
    assert ok.ok and said == [f"web1: {GAP}", f"web2: {GAP}"]
    recorder = FailingRecorder(failing="web2")
    failed = Rollout(recorder, plan_for(), layout_for(CONFIG), parallel=False).run()
    assert not failed.ok and [f.host for f in failed.failures] == ["web2"]
    ran = [(host, step) for host, step, _line in recorder.log]
    # Neither host switched; both stop their new processes (web1 brings its old beat back).
    assert ("web1", "switch") not in ran and ("web2", "switch") not in ran
    assert ("web1", "abort") in ran and ("web2", "abort") in ran
    web1_abort = [line for host, step, line in recorder.log if (host, step) == ("web1", "abort")]
    assert web1_abort[-1].endswith("systemctl start shop-beat@blue-1.service")


def _fingerprint(config: object) -> str:
    states = hosts()
    rendered = {h: render(CONFIG, s.facts) for h, s in states.items()}
    plan = push_plan(config, states, rendered, SECRETS, build(code=b"print('v2')\n"))  # type: ignore[arg-type]
    actions = plan.hosts[0].prepare[-1].actions
    release = next(a for a in actions if isinstance(a, Upload) and a.remote_path.endswith("release.json"))
    return str(json.loads(release.content)["fingerprint"])


def test_a_change_of_instances_alone_is_a_change_to_push() -> None:
    """The unit files do not show how many instances run where: the release's fingerprint does."""
    more = load_text(YAML.replace("instances: 2", "instances: 3"))
    assert _fingerprint(CONFIG) == _fingerprint(CONFIG) != _fingerprint(more)


def test_a_host_without_the_web_role_runs_its_processes_but_no_web_slot() -> None:
    only_workers = load_text(YAML.replace("roles: [web, worker]", "roles: [worker]"))
    states = hosts()
    rendered = {h: render(only_workers, s.facts) for h, s in states.items()}
    plan = push_plan(only_workers, states, rendered, SECRETS, build(code=b"print('v2')\n"))
    web1, web2 = plan.hosts
    assert [s.name for s in web1.start] == ["start", "health", "processes"]
    # web2: the slot link and env file for its processes, never Gunicorn started, probed or booted.
    assert [s.name for s in web2.start] == ["start", "processes"]
    start = lines(web2.start[:1])
    assert any("slot green -> release" in a.description for a in web2.start[0].actions)
    assert not any("shop@" in line for line in start)
    switch = lines(web2.switch)
    assert any("live.sock" in line or "/srv/shop/current" in line for line in switch)
    assert not any("shop@green.service" in line and "enable" in line for line in switch)
    assert switch[-1].endswith(
        "enable --quiet --no-reload shop-worker@green-1.service shop-worker@green-2.service"
    )
    revert = lines(web2.revert)
    assert not any("python3 -c" in line or "systemctl start shop@" in line for line in revert)
    assert revert[-1].endswith("systemctl stop 'shop-worker@green-*.service'")
    assert web2.diagnose is None
    rollback = rollback_plan(only_workers, states, None).hosts[1]
    assert [s.name for s in rollback.start] == ["start", "processes"]


def test_the_web_process_runs_on_hosts_with_the_web_role() -> None:
    only_workers = load_text(YAML.replace("roles: [web, worker]", "roles: [worker]"))
    assert only_workers.runs_web("web1") and not only_workers.runs_web("web2")
    assert only_workers.runs_web("elsewhere")  # a host the config does not list: the default role


def test_setup_installs_no_nginx_and_no_site_on_a_host_without_the_web_role() -> None:
    from deploy.push.plan_setup import setup_plan

    only_workers = load_text(YAML.replace("roles: [web, worker]", "roles: [worker]"))
    # Two bare hosts: no Nginx, no user, no files yet.
    bare = {
        h: replace(s, packages={"python3": True, "python3-venv": True}, nginx_version=None, user_exists=False)
        for h, s in hosts(files={}, links={}, nginx_ok=False).items()
    }
    rendered = {h: render(only_workers, s.facts) for h, s in bare.items()}
    plan = setup_plan(only_workers, bare, rendered, SECRETS)
    web1, web2 = (lines(plan.for_host(h)) for h in ("web1", "web2"))
    assert any("apt-get" in line and "nginx-light" in line for line in web1)
    assert any("www-data" in line for line in web1) and any("nginx" in line for line in web1[-3:])
    # web2 runs only the worker: the app user, its folders, env file and units, never Nginx.
    assert not any("nginx" in line or "www-data" in line for line in web2), web2
    assert {s.name for s in plan.for_host("web2")} >= {"user", "directories", "systemd unit"}
    assert any("shop-worker@.service" in line for line in web2)
