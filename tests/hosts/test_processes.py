"""Processes beside web on two real sandbox hosts: an RQ app and a Celery app side by side, each with
web + worker + scheduler + a timer job and its own `services: redis` (deploy's Redis: ACL, TLS).

flaskr (RQ): `rq worker --with-scheduler` x2 per host (ready: rq), `rq cron` as the singleton
scheduler (ready: heartbeat), a timer; its Redis on the first host.
celapp (Celery): `celery worker` x2 per host (ready: celery, each instance's own node), `celery beat`
as the singleton (ready: notify, its schedule file in the shared folder), a timer; its Redis on the
second host (one Redis per host: deploy's services.redis owns its host's Redis, TLS certificate and
ACL default user, so two apps each get their own host's Redis rather than sharing one).

Jobs enqueued without a pause through a push and a rollback all complete exactly once; the scheduler
never runs twice at once (its start and stop times are recorded); the timer runs once per period
across both hosts; a worker that crashes in a new release sends every host and process back.

One sandbox for the module; the tests run in file order, each from the state the previous one left.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.procapps import (
    CELERY_APP,
    CELERY_ENQUEUE,
    CELERY_PROCESSES,
    RECORD,
    RQ_CRON,
    RQ_ENQUEUE,
    RQ_JOBS,
    RQ_PROCESSES,
    STAMP,
    TIMER,
    TIMER_PERIOD,
    WORKERS,
)
from tests.hosts.pushkit import Project, make_project, private_sandbox, wait_for

pytestmark = pytest.mark.hosts

CREDENTIALS = "/etc/deploy/{app}/services/redis.env"


@dataclass
class App:
    """One of the two apps: its project, its name, the host its Redis is on, its process names."""

    project: Project
    name: str
    redis_host: SandboxHost
    box: Sandbox
    worker: str = "worker"
    scheduler: str = "scheduler"
    #: When its push of v2 began and its rollback ended (time.time()), once the test that does them ran.
    window: list[float] = field(default_factory=list)

    @property
    def domain(self) -> str:
        return f"{self.name}.test"

    def redis(self, *args: str) -> str:
        """redis-cli on the app's Redis as deploy's admin user (its unix socket, as root)."""
        script = (
            f"REDISCLI_AUTH=$(sed -n 's/^REDIS_ADMIN_PASSWORD=//p' {CREDENTIALS.format(app=self.name)}) "
            'redis-cli --no-auth-warning --user deploy-admin -s /run/redis/redis-server.sock "$@"'
        )
        result = self.box.run(self.redis_host, ["sh", "-c", script, "sh", *args], check=True, timeout=30)
        return result.stdout.strip()

    def versions(self) -> list[str | None]:
        out: list[str | None] = []
        for host in self.box.hosts():
            status, body = get_for(host.address, self.domain)
            out.append(str(json.loads(body).get("version")) if status == 200 else None)
        return out

    def units(self, slot: str) -> list[list[str]]:
        """Each host's states of the worker's two instances in `slot`."""
        out = []
        for host in self.box.hosts():
            names = [f"{self.name}-{self.worker}@{slot}-{n}.service" for n in (1, 2)]
            out.append(self.box.run(host, ["systemctl", "is-active", *names], timeout=30).stdout.split())
        return out

    def live_slot(self) -> str:
        first = self.box.hosts()[0]
        link = self.box.run(first, ["readlink", f"/srv/{self.name}/live.sock"], check=True).stdout
        return "blue" if "blue" in link else "green"

    def release(self) -> str:
        first = self.box.hosts()[0]
        return self.box.run(first, ["readlink", f"/srv/{self.name}/current"], check=True).stdout.strip()

    def enqueue(self, script: str, count: int, pause: float, unit: str | None = None) -> None:
        """Run the enqueue script on the first host in the current release with the app's env file:
        in the foreground, or as a transient unit `unit` that goes on while the test does more."""
        release = self.release()
        argv = [
            "systemd-run",
            "--quiet",
            "--collect",
            *([f"--unit={unit}"] if unit else ["--wait", "--pipe"]),
            f"--working-directory={release}",
            f"--property=EnvironmentFile=/etc/{self.name}/env",
            f"{release}/.venv/bin/python",
            script,
            str(count),
            str(pause),
        ]
        self.box.run(self.box.hosts()[0], argv, check=True, timeout=120)

    def done(self) -> list[int]:
        return [int(n) for n in self.redis("LRANGE", "done", "0", "-1").split()]


def get_for(address: str, domain: str) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", "/health", headers={"Host": domain})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "processes-sandbox", 2) as sandbox:
        yield sandbox


def _project(
    box: Sandbox, tmp_path_factory: pytest.TempPathFactory, name: str, files: dict[str, str], extra: str
) -> Project:
    project = make_project(tmp_path_factory.mktemp(f"{name}-project"), box.hosts())
    for path, text in {"flaskr/record.py": RECORD, "stamp.py": STAMP, **files}.items():
        (project.path / path).write_text(text, encoding="utf-8")
    requirements = project.path / "requirements.txt"
    wanted = "rq==3.0.0\n" if name == "flaskr" else "celery[redis]==5.7.0\n"
    requirements.write_text(requirements.read_text(encoding="utf-8") + wanted, encoding="utf-8")
    project.write_config(extra=extra + TIMER)
    if name != "flaskr":
        config = project.path / "deploy.yaml"
        text = config.read_text(encoding="utf-8")
        for key in ("name", "user"):
            text = text.replace(f"  {key}: flaskr\n", f"  {key}: {name}\n", 1)
        text = text.replace("domains: [flaskr.test]", f"domains: [{name}.test]")
        config.write_text(text, encoding="utf-8")
    project.commit(f"the {name} app")
    return project


@pytest.fixture(scope="module")
def rq_app(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> App:
    files = {
        "flaskr/jobs.py": RQ_JOBS,
        "cron_config.py": RQ_CRON,
        "workers.py": WORKERS,
        "enqueue.py": RQ_ENQUEUE,
    }
    extra = RQ_PROCESSES + "services:\n  redis: {}\n"
    return App(_project(box, tmp_path_factory, "flaskr", files, extra), "flaskr", box.hosts()[0], box)


@pytest.fixture(scope="module")
def celery_app(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> App:
    files = {"flaskr/celery_app.py": CELERY_APP, "enqueue.py": CELERY_ENQUEUE}
    second = box.hosts()[1]
    extra = CELERY_PROCESSES + f"services:\n  redis: {{host: {second.address}}}\n"
    project = _project(box, tmp_path_factory, "celapp", files, extra)
    return App(project, "celapp", second, box, scheduler="beat")


@pytest.fixture(scope="module")
def apps(rq_app: App, celery_app: App) -> dict[str, App]:
    return {"rq": rq_app, "celery": celery_app}


def other(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def set_version(app: App, version: str) -> None:
    app.project.set_version(version)


def test_a_push_starts_both_apps_processes_on_every_host(box: Sandbox, apps: dict[str, App]) -> None:
    first, second = box.hosts()
    for app in apps.values():
        app.project.deploy("setup", check=True, timeout=600)
    # The two first pushes at once (each app has its own lock, wheels and paths).
    with ThreadPoolExecutor(len(apps)) as pool:
        pushed = list(pool.map(lambda app: app.project.deploy("push", timeout=900), apps.values()))
    for result in pushed:
        assert result.returncode == 0 and "is live on" in result.stdout, result.stdout + result.stderr
    for app in apps.values():
        assert app.versions() == ["v1", "v1"]
        slot = app.live_slot()
        assert app.units(slot) == [["active", "active"]] * 2
        app.redis("DEL", "done")
        app.enqueue("enqueue.py", 3, 0)
        wait_for(f"{app.name}: 3 jobs done", lambda: sorted(app.done()) == [0, 1, 2], 60)  # noqa: B023
        # deploy status lists each host's instances: the singleton on the first host only.
        status = app.project.deploy("status", check=True).stdout
        on_first, on_second = status.split(f"{second.address}:")
        scheduler = f"{app.name}-{app.scheduler}@{slot}-1"
        assert f"  process  {scheduler} active" in on_first and scheduler not in on_second
        for part in (on_first, on_second):
            assert f"  process  {app.name}-worker@{slot}-1 active" in part
            assert f"  process  {app.name}-worker@{slot}-2 active" in part
    rq, celery = apps["rq"], apps["celery"]
    # ready: heartbeat (rq cron touches its file), ready: notify (beat's READY=1: a Type=notify unit
    # is active only after it), ready: celery (the push waited for each instance's own node).
    age = box.run(
        first,
        ["sh", "-c", "echo $(( $(date +%s) - $(stat -c %Y /srv/flaskr/shared/instance/cron.heartbeat) ))"],
    )
    assert int(age.stdout) <= 3
    beat = f"celapp-beat@{celery.live_slot()}-1.service"
    shown = box.run(first, ["systemctl", "show", "-p", "Type", "-p", "ActiveState", beat], check=True).stdout
    assert shown.split() == ["Type=notify", "ActiveState=active"]
    nodes = celery.project.deploy(
        "exec", "--", "celery", "-A", "flaskr.celery_app", "inspect", "ping", "--timeout", "5", check=True
    ).stdout
    slot = celery.live_slot()
    for host in ("sandbox-1", "sandbox-2"):
        for n in (1, 2):
            assert f"-> worker-{slot}-{n}@{host}: OK" in " ".join(nodes.split()), nodes
    logs = rq.project.deploy("logs", "--process", "worker", "-n", "20", check=True).stdout
    assert "default" in logs
    # Both schedulers tick (each tick is a job its workers ran).
    wait_for(
        "ticks",
        lambda: int(rq.redis("GET", "ticks") or 0) > 2 and int(celery.redis("GET", "ticks") or 0) > 2,
        30,
    )


def push_and_roll_back(app: App) -> str:
    """Push v2 then roll back, checking what each did; the slot served before (and again after)."""
    first = app.box.hosts()[0]
    before = app.live_slot()
    set_version(app, "v2")
    began = time.time()
    pushed = app.project.deploy("push", check=True, timeout=600).stdout
    assert app.versions() == ["v2", "v2"]
    assert app.live_slot() == other(before)
    # The singleton's old instance stopped before its new one started; the push says for how long.
    scheduler = f"{app.name}-{app.scheduler}"
    assert f"{first.address}: singleton: {scheduler}@{before}-1.service stopped in " in pushed
    assert "a gap of " in pushed
    rolled = app.project.deploy("rollback", check=True, timeout=600).stdout
    assert app.versions() == ["v1", "v1"] and app.live_slot() == before, rolled
    assert f"{first.address}: singleton: {scheduler}@{other(before)}-1.service stopped in " in rolled
    app.window[:] = [began, time.time()]
    return before


def all_done_once(app: App, kind: str, before: str) -> None:
    """The enqueuer still ran; stop it; every job it enqueued is done exactly once."""
    first = app.box.hosts()[0]
    running = app.box.run(first, ["systemctl", "is-active", f"{app.name}-enqueue"], timeout=30).stdout
    assert running.strip() == "active", "the enqueuer ended before the push and the rollback did"
    app.redis("SET", "enqueue:stop", "1")
    wait_for(
        "the enqueuer ended",
        lambda: (
            app.box.run(first, ["systemctl", "is-active", f"{app.name}-enqueue"]).stdout.strip() != "active"
        ),
        30,
    )
    count = int(app.redis("GET", "enqueued"))
    assert count > 20, count  # 2.5 a second, from before the push until after the rollback
    # The backlog drains after the enqueuer ends. Waiting ends when all are done, or when none has
    # been done for a minute.
    progress = {"done": -1, "at": time.monotonic()}

    def drained() -> bool:
        now = int(app.redis("LLEN", "done"))
        if now != progress["done"]:
            progress.update(done=now, at=time.monotonic())
        return now >= count or time.monotonic() - progress["at"] > 60

    wait_for(f"{count} jobs done", drained, 600)
    time.sleep(2)  # a job done twice would come in now
    numbers = app.done()
    missing = sorted(set(range(count)) - set(numbers))
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    parked: list[str] = []
    if kind == "rq":
        # RQ's own window (rq/rq#2236): a worker that gets its stop signal while idle leaves the job
        # it is dequeuing at that instant in RQ's intermediate queue; RQ fails it later as "stuck in
        # intermediate queue". Such jobs are named here; any other lost job fails the test.
        parked = [
            app.redis("HGET", f"rq:job:{job}", "description")
            for job in app.redis("LRANGE", "rq:queue:default:intermediate", "0", "-1").split()
        ]
    print(
        f"{kind}: {count} enqueued, {len(set(numbers))} done, twice {twice}, missing {missing}, "
        f"parked {parked}"
    )
    lost = [n for n in missing if f"flaskr.jobs.record({n})" not in parked]
    assert (lost, twice) == ([], []), f"jobs lost {lost[:20]} or done twice {twice[:20]}, parked {parked}"
    if kind == "rq":
        assert app.redis("ZCARD", "rq:failed:default") == "0"

    # The old slot's workers got their warm shutdown; the live slot's run on both hosts.
    # Stopped: "inactive", or "failed" when RQ's exit hung after its last job (rq/rq#1613: it waits on
    # its pubsub thread) until systemd killed it at stop_timeout; the job counts above show none lost.
    def stopped() -> bool:
        return all(state in ("inactive", "failed") for host in app.units(other(before)) for state in host)

    wait_for("the old workers stopped", stopped, 60)
    assert app.units(before) == [["active", "active"]] * 2


def test_jobs_enqueued_during_a_push_and_a_rollback_complete_exactly_once(apps: dict[str, App]) -> None:
    """Both apps at once (each has its own lock; it also halves the test's time): an enqueuer each,
    a push and a rollback each, then every job counted."""
    for app in apps.values():
        app.redis("DEL", "done")
        app.enqueue("enqueue.py", 0, 0.4, unit=f"{app.name}-enqueue")
    with ThreadPoolExecutor(len(apps)) as pool:
        slots = dict(zip(apps, pool.map(push_and_roll_back, apps.values()), strict=True))
    for kind, app in apps.items():
        all_done_once(app, kind, slots[kind])


def intervals(app: App) -> list[tuple[float, float, str]]:
    """The scheduler's runs: (start, stop, who); one still running stops now."""
    starts: dict[str, float] = {}
    out = []
    for line in app.redis("LRANGE", "sched:events", "0", "-1").splitlines():
        event, at, host, pid, _what = line.split()
        who = f"{host}:{pid}"
        if event == "start":
            starts[who] = float(at)
        else:
            out.append((starts.pop(who), float(at), who))
    out += [(at, time.time() + 1e6, who) for who, at in starts.items()]
    return sorted(out)


@pytest.mark.parametrize("kind", ["rq", "celery"])
def test_the_scheduler_never_ran_twice_at_once(box: Sandbox, apps: dict[str, App], kind: str) -> None:
    runs = intervals(apps[kind])
    print(f"{kind} scheduler runs: {runs}")
    assert len(runs) >= 3, runs  # the first push, the push of v2, the rollback
    assert len([r for r in runs if r[1] > time.time()]) == 1, runs  # one runs now
    for (_start, stop, who), (start, _stop, next_who) in itertools.pairwise(runs):
        assert stop <= start, f"{who} still ran when {next_who} started ({stop - start:.2f}s overlap)"
    assert {who.split(":")[0] for _s, _e, who in runs} == {"sandbox-1"}


@pytest.mark.parametrize("kind", ["rq", "celery"])
def test_the_timer_ran_once_per_period_across_both_hosts(
    box: Sandbox, apps: dict[str, App], kind: str
) -> None:
    app = apps[kind]

    def recorded() -> list[list[str]]:
        return [line.split() for line in app.redis("LRANGE", "timer", "0", "-1").splitlines()]

    # The timer has run since the first push. The runs must span the push of v2 and the rollback: from
    # the period the push began in (its first run may come one period later when the tests between took
    # less than a period) to a period after the one the rollback ended in. Without the test that does
    # them (run alone), five periods.
    def last() -> int:
        return max((int(period) for period, _host in recorded()), default=-1)

    if app.window:
        began, ended = (int(at // TIMER_PERIOD) for at in app.window)
        wait_for("a timer period after the rollback", lambda: last() > ended, 3 * TIMER_PERIOD + 30)
    else:
        wait_for("five timer periods", lambda: len({period for period, _host in recorded()}) >= 5, 150)
    runs = recorded()
    periods = sorted({int(period) for period, _host in runs})
    print(f"{kind} timer runs: {runs}, push and rollback {app.window}")
    if app.window:
        assert periods[0] <= began + 1 and periods[-1] > ended, (runs, app.window)
    else:
        assert len(periods) >= 5, runs
    assert {host for _period, host in runs} == {"sandbox-1"}
    counts = app.redis("MGET", *(f"timer:{p}" for p in periods)).split()
    twice = [p for p, n in zip(periods, counts, strict=True) if n != "1"]
    assert twice == [], f"periods run more than once: {twice}"
    # No period was skipped between the first and the last run (a push or a rollback in between).
    assert periods == list(range(periods[0], periods[-1] + 1)), periods


def test_a_celery_worker_that_crashes_in_the_new_release_sends_every_host_and_process_back(
    box: Sandbox, apps: dict[str, App]
) -> None:
    app = apps["celery"]
    before = app.live_slot()
    config = app.project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("env: {", 'env: {CRASH_WORKER: "1", ', 1), encoding="utf-8")
    set_version(app, "v3-crashing")
    result = app.project.deploy("push", timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "celapp-worker@" in out and "it crashes" in out, out
    assert "RuntimeError: this release's worker cannot start" in out, out
    assert app.versions() == ["v1", "v1"]
    assert app.live_slot() == before
    assert app.units(before) == [["active", "active"]] * 2
    assert all(s in ("inactive", "failed") for host in app.units(other(before)) for s in host)
    beat = box.run(box.hosts()[0], ["systemctl", "is-active", f"celapp-beat@{before}-1.service"], timeout=30)
    assert beat.stdout.strip() == "active"
    app.redis("DEL", "done")
    app.enqueue("enqueue.py", 3, 0)
    wait_for("3 jobs done", lambda: sorted(app.done()) == [0, 1, 2], 60)
    config.write_text(text, encoding="utf-8")
    app.project.commit("no crash")


def test_a_host_without_the_web_role_runs_its_processes_and_no_web_slot(
    box: Sandbox, apps: dict[str, App]
) -> None:
    app = apps["rq"]
    project = app.project
    first, second = box.hosts()
    (project.path / "workers.py").write_text(WORKERS, encoding="utf-8")
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    hosts = f"hosts: [{first.address}, {second.address}]"
    assert hosts in text
    config.write_text(
        text.replace(hosts, f"hosts: [{first.address}, {{address: {second.address}, roles: [worker]}}]"),
        encoding="utf-8",
    )
    set_version(app, "v4")
    project.deploy("push", check=True, timeout=600)
    slot = app.live_slot()
    assert app.units(slot) == [["active", "active"]] * 2
    wait_for(
        "the second host's web slots stopped",
        lambda: (
            box.run(second, ["systemctl", "is-active", "flaskr@blue", "flaskr@green"]).stdout.split()
            == ["inactive", "inactive"]
        ),
        30,
    )
    on_first = box.run(first, ["systemctl", "is-active", f"flaskr@{slot}"], timeout=30).stdout.strip()
    assert on_first == "active"
    status = project.deploy("status", check=True).stdout.split(f"{second.address}:")[1]
    assert "  service  -\n  health   no web process here (its roles leave out web)" in status
    assert f"  process  flaskr-worker@{slot}-1 active" in status
    # The next push moves its workers as before.
    set_version(app, "v5")
    project.deploy("push", check=True, timeout=600)
    assert app.live_slot() == other(slot)
    assert app.units(other(slot)) == [["active", "active"]] * 2


def test_a_process_taken_out_of_deploy_yaml_is_removed_and_a_rollback_does_not_bring_it_back(
    box: Sandbox, apps: dict[str, App]
) -> None:
    app = apps["rq"]
    project = app.project
    first = box.hosts()[0]
    template = "/etc/systemd/system/flaskr-scheduler@.service"
    assert box.run(first, ["test", "-f", template], timeout=30).returncode == 0
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    beat = RQ_PROCESSES.split("  worker:")[0].removeprefix("processes:\n")
    assert beat in text
    config.write_text(text.replace(beat, ""), encoding="utf-8")
    set_version(app, "v6")
    out = project.deploy("push", check=True, timeout=600).stdout
    assert "drop processes" in out, out
    beats = ["flaskr-scheduler@blue-1.service", "flaskr-scheduler@green-1.service"]
    for host in box.hosts():
        assert (
            box.run(host, ["systemctl", "is-active", *beats], timeout=30).stdout.split() == ["inactive"] * 2
        )
        assert box.run(host, ["test", "-e", template], timeout=30).returncode == 1
        wants = box.run(host, ["sh", "-c", "ls /etc/systemd/system/multi-user.target.wants/"], timeout=30)
        assert "flaskr-scheduler@" not in wants.stdout and "flaskr-worker@" in wants.stdout
    slot = app.live_slot()
    assert app.units(slot)[0] == ["active", "active"]
    # The release before ran beat: the rollback says it does not start it again, and does not.
    result = project.deploy("rollback", timeout=600)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    note = "ran scheduler, which deploy.yaml no longer has: the rollback does not start it again"
    assert note in said, said
    assert box.run(first, ["systemctl", "is-active", *beats], timeout=30).stdout.split() == ["inactive"] * 2
    assert app.units(other(slot))[0] == ["active", "active"]
    # Fewer instances: setup (which switches no slot) stops the one the host no longer runs.
    config.write_text(
        config.read_text(encoding="utf-8").replace("instances: 2", "instances: 1"), encoding="utf-8"
    )
    out = project.deploy("setup", check=True, timeout=600).stdout
    assert "drop processes" in out, out
    assert app.units(other(slot))[0] == ["active", "inactive"]
