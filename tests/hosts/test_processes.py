"""Processes beside web on two real sandbox hosts with a real Redis (Debian's redis-server on the first
host): an RQ worker moves with each push and rollback while jobs are enqueued without a pause, and every
job completes exactly once; a worker that crashes in a new release sends every host and process back.

One sandbox for the module; the tests run in file order, each from the state the previous one left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, make_project, private_sandbox, versions

pytestmark = pytest.mark.hosts

JOBS = '''\
"""Jobs the worker runs: each records its number once it is done."""

import os
import time

from redis import Redis


def record(number):
    time.sleep(0.3)  # a job in hand while the old workers get their warm shutdown
    Redis.from_url(os.environ["REDIS_URL"]).rpush("done", number)
'''

WORKERS = '''\
"""The worker class `rq worker -w workers.AppWorker` runs."""

from rq import Worker as AppWorker  # noqa: F401
'''

CRASHING = """\
raise RuntimeError("this release's worker cannot start")
"""

ENQUEUE = '''\
"""Enqueue `count` jobs, one every `pause` seconds (run on a host, from a release)."""

import sys
import time

from redis import Redis
from rq import Queue

queue = Queue("default", connection=Redis.from_url(sys.argv[1]))
for number in range(int(sys.argv[2])):
    queue.enqueue("flaskr.jobs.record", number)
    time.sleep(float(sys.argv[3]))
'''

BEAT = '''\
"""A scheduler: a singleton. Each tick records how many beats run at that moment."""

import os
import signal
import socket
import sys
import time

from redis import Redis

redis = Redis.from_url(os.environ["REDIS_URL"])
me = f"{socket.gethostname()}:{os.getpid()}"


def stop(*_args):
    redis.srem("beat:running", me)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
redis.sadd("beat:running", me)
while True:
    redis.rpush("beat:seen", redis.scard("beat:running"))
    time.sleep(0.2)
'''

PROCESSES = """\
processes:
  beat:
    command: python beat.py
    singleton: true
    settle: 2
  worker:
    command: rq worker --url "$REDIS_URL" -w workers.AppWorker default
    instances: 2
    stop_timeout: 30
    ready: rq
    settle: 3
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "processes-sandbox", 2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def redis_url(box: Sandbox) -> str:
    """Redis on the first host, reachable from the second (for this test only: no password)."""
    first = box.hosts()[0]
    script = (
        "sed -i -e 's/^bind .*/bind 0.0.0.0/' -e 's/^protected-mode yes/protected-mode no/' "
        "/etc/redis/redis.conf && systemctl start redis-server && redis-cli ping"
    )
    assert box.run(first, ["sh", "-c", script], check=True, timeout=60).stdout.strip() == "PONG"
    return f"redis://{first.address}:6379/0"


@pytest.fixture(scope="module")
def project(box: Sandbox, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("processes-project"), box.hosts())
    (project.path / "flaskr" / "jobs.py").write_text(JOBS, encoding="utf-8")
    (project.path / "workers.py").write_text(WORKERS, encoding="utf-8")
    (project.path / "enqueue.py").write_text(ENQUEUE, encoding="utf-8")
    (project.path / "beat.py").write_text(BEAT, encoding="utf-8")
    requirements = project.path / "requirements.txt"
    requirements.write_text(requirements.read_text(encoding="utf-8") + "rq==3.0.0\n", encoding="utf-8")
    project.write_config(extra=PROCESSES)
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("env: {", f'env: {{REDIS_URL: "{redis_url}", ', 1), encoding="utf-8")
    project.commit("an RQ worker")
    return project


def redis(box: Sandbox, *args: str) -> str:
    return box.run(box.hosts()[0], ["redis-cli", *args], check=True, timeout=30).stdout.strip()


def units(box: Sandbox, slot: str) -> list[list[str]]:
    """Each host's states of the worker's two instances in `slot`."""
    out = []
    for host in box.hosts():
        names = [f"flaskr-worker@{slot}-{n}.service" for n in (1, 2)]
        result = box.run(host, ["systemctl", "is-active", *names], timeout=30)
        out.append(result.stdout.split())
    return out


def live_slot(box: Sandbox) -> str:
    link = box.run(box.hosts()[0], ["readlink", "/srv/flaskr/live.sock"], check=True).stdout
    return "blue" if "blue" in link else "green"


def other(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def wait_for(what: str, ready, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"not {what} after {timeout:g}s"
        time.sleep(1)


def test_a_push_starts_the_workers_on_every_host(box: Sandbox, project: Project) -> None:
    project.deploy("setup", check=True)
    out = project.deploy("push", check=True, timeout=600).stdout
    assert "is live on" in out
    assert versions(project) == ["v1", "v1"]
    slot = live_slot(box)
    assert units(box, slot) == [["active", "active"]] * 2
    # A job enqueued now is done by a worker.
    redis(box, "DEL", "done")
    release = box.run(box.hosts()[0], ["readlink", "/srv/flaskr/current"], check=True).stdout.strip()
    enqueue = f"cd {release} && .venv/bin/python enqueue.py redis://127.0.0.1:6379/0 3 0"
    box.run(box.hosts()[0], ["sh", "-c", enqueue], check=True, timeout=60)
    wait_for("3 jobs done", lambda: redis(box, "LLEN", "done") == "3", 60)
    # deploy status lists each host's instances: the singleton beat on the first host only.
    status = project.deploy("status", check=True).stdout
    first, second = status.split(f"{box.hosts()[1].address}:")
    assert f"  process  flaskr-beat@{slot}-1 active" in first and "flaskr-beat" not in second
    for part in (first, second):
        assert f"  process  flaskr-worker@{slot}-1 active" in part
        assert f"  process  flaskr-worker@{slot}-2 active" in part
    logs = project.deploy("logs", "--process", "worker", "-n", "20", check=True).stdout
    assert "Listening on default" in logs or "default" in logs


def test_jobs_enqueued_during_a_push_and_a_rollback_complete_exactly_once(
    box: Sandbox, project: Project
) -> None:
    first = box.hosts()[0]
    redis(box, "DEL", "done", "beat:seen")
    release = box.run(first, ["readlink", "/srv/flaskr/current"], check=True).stdout.strip()
    count = 500
    enqueue = (
        f"systemd-run --quiet --collect --unit=procs-enqueue --working-directory={release} "
        f"{release}/.venv/bin/python enqueue.py redis://127.0.0.1:6379/0 {count} 0.15"
    )
    box.run(first, ["sh", "-c", enqueue], check=True, timeout=30)
    before = live_slot(box)
    project.set_version("v2")
    pushed = project.deploy("push", check=True, timeout=600).stdout
    assert versions(project) == ["v2", "v2"]
    assert live_slot(box) == other(before)
    # The singleton's old instance stopped before its new one started; the push says for how long.
    assert f"{first.address}: singleton: flaskr-beat@{before}-1.service stopped in " in pushed
    rolled = project.deploy("rollback", check=True, timeout=600).stdout
    assert versions(project) == ["v1", "v1"] and live_slot(box) == before, rolled
    assert f"{first.address}: singleton: flaskr-beat@{other(before)}-1.service stopped in " in rolled
    running = box.run(first, ["systemctl", "is-active", "procs-enqueue"], timeout=30).stdout.strip()
    assert running == "active", "the enqueuer ended before the push and the rollback did"
    # Four workers take about three jobs a second (each job is a fork): the backlog drains after the
    # enqueuer ends. Waiting ends when all are done, or when none has been done for a minute.
    progress = {"done": -1, "at": time.monotonic()}

    def drained() -> bool:
        now = int(redis(box, "LLEN", "done"))
        if now != progress["done"]:
            progress.update(done=now, at=time.monotonic())
        stalled = time.monotonic() - progress["at"] > 60
        return now >= count or stalled

    wait_for(f"{count} jobs done", drained, 600)
    state = {
        "queued": redis(box, "LLEN", "rq:queue:default"),
        "started": redis(box, "ZCARD", "rq:wip:default"),
        "failed": redis(box, "ZCARD", "rq:failed:default"),
    }
    time.sleep(2)  # a job done twice would come in now
    numbers = [int(n) for n in redis(box, "LRANGE", "done", "0", "-1").split()]
    missing = sorted(set(range(count)) - set(numbers))
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    # RQ's own window: a worker that gets its stop signal while idle leaves the job it is dequeuing at
    # that instant in RQ's intermediate queue (BLMOVE done, the reply never read); RQ fails it later as
    # "stuck in intermediate queue". Such jobs are named here; any other lost job fails the test.
    parked = [
        redis(box, "HGET", f"rq:job:{job}", "description")
        for job in redis(box, "LRANGE", "rq:queue:default:intermediate", "0", "-1").split()
    ]
    print(
        f"jobs: {count} enqueued, {len(set(numbers))} done, twice {twice}, missing {missing}, parked {parked}"
    )
    lost = [n for n in missing if f"flaskr.jobs.record({n})" not in parked]
    assert (lost, twice) == ([], []), (
        f"jobs lost {lost[:20]} or done twice {twice[:20]}; {state}, parked {parked}"
    )
    assert redis(box, "ZCARD", "rq:failed:default") == "0"
    # Never two schedulers at once, through a push and a rollback.
    seen = [int(n) for n in redis(box, "LRANGE", "beat:seen", "0", "-1").split()]
    assert len(seen) > 50 and max(seen) == 1, f"beats at once: {sorted(set(seen))}"

    # The old slot's workers got their warm shutdown; the live slot's run on both hosts.
    # Stopped: "inactive", or "failed" when RQ's exit hung after its last job (rq/rq#1613: it waits on
    # its pubsub thread) until systemd killed it at stop_timeout; the job counts above show none lost.
    def stopped() -> bool:
        return all(state in ("inactive", "failed") for host in units(box, other(before)) for state in host)

    try:
        wait_for("the old workers stopped", stopped, 60)
    except AssertionError:
        shown = [
            box.run(
                host, ["systemctl", "status", "--no-pager", "-n", "15", f"flaskr-worker@{other(before)}-*"]
            ).stdout
            for host in box.hosts()
        ]
        raise AssertionError(f"{units(box, other(before))}\n" + "\n".join(shown)) from None
    assert units(box, before) == [["active", "active"]] * 2


def test_a_worker_that_crashes_in_the_new_release_sends_every_host_and_process_back(
    box: Sandbox, project: Project
) -> None:
    before = live_slot(box)
    serving = versions(project)
    (project.path / "workers.py").write_text(CRASHING, encoding="utf-8")
    project.set_version("v3-crashing")
    result = project.deploy("push", timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "flaskr-worker@" in out and "it crashes" in out, out
    assert "RuntimeError: this release's worker cannot start" in out, out  # its own last words
    assert versions(project) == serving
    assert live_slot(box) == before
    assert units(box, before) == [["active", "active"]] * 2
    assert units(box, other(before)) == [["inactive", "inactive"]] * 2 or all(
        state in ("inactive", "failed") for host in units(box, other(before)) for state in host
    )
    # The singleton stopped for the new release's one is back (the new one stopped first).
    beat = box.run(box.hosts()[0], ["systemctl", "is-active", f"flaskr-beat@{before}-1.service"], timeout=30)
    assert beat.stdout.strip() == "active"
    # The old workers still take jobs.
    redis(box, "DEL", "done")
    release = box.run(box.hosts()[0], ["readlink", "/srv/flaskr/current"], check=True).stdout.strip()
    enqueue = f"cd {release} && .venv/bin/python enqueue.py redis://127.0.0.1:6379/0 3 0"
    box.run(box.hosts()[0], ["sh", "-c", enqueue], check=True, timeout=60)
    wait_for("3 jobs done", lambda: redis(box, "LLEN", "done") == "3", 60)


def test_a_host_without_the_web_role_runs_its_processes_and_no_web_slot(
    box: Sandbox, project: Project
) -> None:
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
    project.set_version("v4")
    project.deploy("push", check=True, timeout=600)
    slot = live_slot(box)
    assert units(box, slot) == [["active", "active"]] * 2
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
    project.set_version("v5")
    project.deploy("push", check=True, timeout=600)
    assert live_slot(box) == other(slot)
    assert units(box, other(slot)) == [["active", "active"]] * 2


def test_a_process_taken_out_of_deploy_yaml_is_removed_and_a_rollback_does_not_bring_it_back(
    box: Sandbox, project: Project
) -> None:
    first = box.hosts()[0]
    template = "/etc/systemd/system/flaskr-beat@.service"
    assert box.run(first, ["test", "-f", template], timeout=30).returncode == 0
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    beat = "  beat:\n    command: python beat.py\n    singleton: true\n    settle: 2\n"
    assert beat in text
    config.write_text(text.replace(beat, ""), encoding="utf-8")
    project.set_version("v6")
    out = project.deploy("push", check=True, timeout=600).stdout
    assert "drop processes" in out, out
    beats = ["flaskr-beat@blue-1.service", "flaskr-beat@green-1.service"]
    for host in box.hosts():
        assert (
            box.run(host, ["systemctl", "is-active", *beats], timeout=30).stdout.split() == ["inactive"] * 2
        )
        assert box.run(host, ["test", "-e", template], timeout=30).returncode == 1
        wants = box.run(host, ["sh", "-c", "ls /etc/systemd/system/multi-user.target.wants/"], timeout=30)
        assert "flaskr-beat@" not in wants.stdout and "flaskr-worker@" in wants.stdout
    slot = live_slot(box)
    assert units(box, slot)[0] == ["active", "active"]
    # The release before ran beat: the rollback says it does not start it again, and does not.
    result = project.deploy("rollback", timeout=600)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "ran beat, which deploy.yaml no longer has: the rollback does not start it again" in said, said
    assert box.run(first, ["systemctl", "is-active", *beats], timeout=30).stdout.split() == ["inactive"] * 2
    assert units(box, other(slot))[0] == ["active", "active"]
    # Fewer instances: setup (which switches no slot) stops the one the host no longer runs.
    config.write_text(
        config.read_text(encoding="utf-8").replace("instances: 2", "instances: 1"), encoding="utf-8"
    )
    out = project.deploy("setup", check=True, timeout=600).stdout
    assert "drop processes" in out, out
    assert units(box, other(slot))[0] == ["active", "inactive"]
