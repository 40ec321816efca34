"""The deploy lock never frees while work of its push runs: command builders (exact lines), the plan's
named release units, and the holder and step guard scripts run for real by bash on this machine."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.cli import main  # noqa: F401  (registers the commands before cli_push is imported)
from deploy.cli.lock import released
from deploy.config.loader import ConfigError, load_text
from deploy.layout import Layout, layout_for
from deploy.plan import Upload
from deploy.push.lock import lock_record
from deploy.push.plan_push import push_plan
from deploy.remote import commands as cmd
from deploy.remote.executor import ConnectError, SSHExecutor, step_script
from deploy.remote.facts import parse_state
from tests.unit.push.test_plans import CONFIG, SECRETS, YAML, build, rendered_map, states

pytestmark = pytest.mark.unit

LAYOUT = layout_for(CONFIG)


def test_layout_names_the_work_file_and_the_release_units() -> None:
    assert LAYOUT.work_file == "/srv/shop/.deploy/work"
    unit = LAYOUT.release_unit("20250101-000000-aaaaaaa", 2)
    assert unit == "shop-release-20250101-000000-aaaaaaa-2.service"
    assert LAYOUT.release_units == "shop-release-*"


def test_uploads_are_checked_against_their_sha256_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "env"
    target.write_text("old\n")
    digest = hashlib.sha256(b"new\n").hexdigest()
    argv = cmd.write_stdin_argv(str(target), 0o640, "root", "root", digest)
    assert argv[:7] == ("python3", "-I", "-S", "-c", cmd.SAFE_FS, "write", str(target))
    # Other bytes than the digest names (here one more line): nothing replaced, no temporary file left.
    wrong = subprocess.run(argv, input=b"new\nmore\n", capture_output=True, check=False)
    assert wrong.returncode == 74 and b"incomplete upload" in wrong.stdout
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["env"]
    right = subprocess.run(argv, input=b"new\n", capture_output=True, check=False)
    assert right.returncode == 0, right.stdout
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["env"]
    script = step_script([Upload("/srv/shop/x", b"x", 0o644, "root", "root")])
    assert " base64 <<'@@DEPLOY_EOF@@'" in script and hashlib.sha256(b"x").hexdigest() in script


def test_a_truncated_upload_never_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "site.conf"
    target.write_text("old\n")
    content = b"server { listen 80; }\n" * 500
    script = step_script([Upload(str(target), content, 0o644, "root", "root")])
    cut = script[: script.rindex("\n", 0, len(script) // 2) + 1]  # cut at a line, as a lost link may
    result = subprocess.run(["sh", "-s"], input=cut, capture_output=True, text=True, check=False)
    assert result.returncode == 74, result.stdout
    assert "incomplete upload" in result.stdout
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["site.conf"]
    whole = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=False)
    assert whole.returncode == 0 and target.read_bytes() == content


def test_the_guard_and_the_holder_command_lines() -> None:
    assert cmd.guarded(LAYOUT, 4242, "upload", ("sh", "-s")) == (
        "sh",
        "-c",
        cmd.STEP_GUARD,
        "guard",
        "/srv/shop/.deploy/work",
        "/srv/shop/.deploy/lock.json",
        "4242",
        "upload",
        "sh",
        "-s",
    )
    holder = cmd.lock_holder(LAYOUT, {"by": "ann"}, 60, 120)
    assert holder.argv[3:] == (
        "lock",
        "/srv/shop/.deploy/lock",
        "/srv/shop/.deploy/lock.json",
        '{"by": "ann"}',
        "60",
        "exists",
        "/srv/shop/.deploy/work",
        "shop-release-*",
        "120",
    )


def test_release_commands_run_as_named_units_the_lock_holder_waits_for() -> None:
    hosts = states()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())
    (release,) = plan.release_steps
    line = release.actions[0].line()  # type: ignore[union-attr]
    assert line.startswith(
        "systemd-run --quiet --wait --pipe --collect "
        "--unit=shop-release-20250101-000000-aaaaaaa-1.service --service-type=exec "
    )
    exec_line = cmd.run_in_release(LAYOUT, "/srv/shop/current", "true", "r", "e", {}, "deploy exec").line()
    assert "--unit" not in exec_line  # deploy exec: never a push's unit


def test_step_timeout_is_a_push_setting() -> None:
    assert CONFIG.push.step_timeout == 600
    assert load_text(YAML + "push: {step_timeout: 1800}\n").push.step_timeout == 1800
    with pytest.raises(ConfigError, match="step_timeout"):
        load_text(YAML + "push: {step_timeout: 5}\n")


def test_lock_wait_is_a_push_setting() -> None:
    assert CONFIG.push.lock_wait == 120
    config = load_text(YAML + "push: {lock_wait: 900}\n")
    assert config.push.lock_wait == 900
    with pytest.raises(ConfigError, match="lock_wait"):
        load_text(YAML + "push: {lock_wait: -1}\n")


def test_a_missing_key_file_names_server_ssh_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    config = load_text(YAML + f"  ssh: {{key: {missing}}}\n")
    executor = SSHExecutor(config, config.server.hosts)
    with pytest.raises(ConnectError) as error:
        executor.connection("web1")
    assert str(error.value) == (
        f"web1: server.ssh.key in deploy.yaml names {missing}, but there is no such file; "
        "correct the path, or remove the key to use the SSH agent"
    )


def test_lock_status_words_for_a_draining_holder_and_leftover_work() -> None:
    record = '{"draining": "upload", "remote_pid": 9, "by": "ann@laptop", "pid": 7, "action": "push", '
    record += '"release": "r2", "since": "2026-01-01T00:00:00Z"}'
    assert lock_record(record) == (
        "ann@laptop (pid 7, push of release r2, since 2026-01-01T00:00:00Z), which was interrupted: "
        "its last step (upload) is still finishing on the host, and the lock frees itself when it ends"
    )
    state = parse_state("web1", json.dumps({"lock": {"held": False, "record": None, "working": "release"}}))
    assert state.lock.working == "release" and not state.lock.held


# --- the scripts themselves, run by bash in a temporary directory ---------------------------------


def lock_layout(tmp_path: Path) -> Layout:
    """The layout with its lock, lock record and work files under tmp_path."""
    state = tmp_path / ".deploy"
    state.mkdir()
    return replace(
        LAYOUT, lock_file=f"{state}/lock", lock_info=f"{state}/lock.json", work_file=f"{state}/work"
    )


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return lock_layout(tmp_path)


def _holder(layout: Layout, by: str, wait: int = 10) -> subprocess.Popen[str]:
    argv = cmd.lock_holder(layout, {"by": by, "action": "push", "release": by}, 60, wait).argv
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def test_the_lock_stays_held_until_the_killed_push_s_step_ends(layout: Layout) -> None:
    first = _holder(layout, "one")
    locked = _line(first)
    assert locked.startswith("LOCKED ")
    pid = int(locked.split()[1])
    # The step runs until the test lets it end (no timed sleep: a busy machine must not reorder it).
    go = Path(layout.lock_info).with_name("go-step")
    step = subprocess.Popen(
        cmd.guarded(
            layout, pid, "upload", ("sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; echo step done")
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not Path(layout.work_file).read_text().endswith(" upload\n"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert first.stdin is not None
    first.stdin.close()  # the pushing process is gone
    while '"draining": "upload"' not in Path(layout.lock_info).read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Nothing more of the killed push runs: a step arriving now is refused.
    late = subprocess.run(
        cmd.guarded(layout, pid, "switch", ("echo", "switched")), capture_output=True, text=True, check=False
    )
    assert late.returncode == cmd.LOST_LOCK and "switched" not in late.stdout.replace("'switch'", "")
    assert "no longer holds the deploy lock" in late.stdout
    # A second push waits for the step, then takes over and names the interrupted push.
    second = _holder(layout, "two")
    assert _line(second).startswith('WAITING {"draining": "upload", ')
    assert step.poll() is None  # it is still running while the second push waits
    go.touch()
    stale = _line(second)
    assert step.poll() is not None and step.communicate()[0] == "step done\n"
    assert stale.startswith("STALE {") and '"by": "one"' in stale and "draining" not in stale
    assert _line(second).startswith("LOCKED ")
    assert first.wait(timeout=10) == 0
    assert second.stdin is not None
    second.stdin.write("release\n")
    second.stdin.flush()
    assert _line(second) == "RELEASED" and second.wait(timeout=10) == 0
    assert not Path(layout.lock_info).exists()


def test_after_a_forced_release_the_next_push_waits_for_leftover_work_then_says_so(
    layout: Layout,
) -> None:
    first = _holder(layout, "one")
    pid = int(_line(first).split()[1])
    step = subprocess.Popen(cmd.guarded(layout, pid, "release", ("sleep", "5")))
    deadline = time.monotonic() + 10
    while not Path(layout.work_file).read_text().endswith(" release\n"):  # the step runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run(cmd.lock_release_forced(layout).argv, check=True, capture_output=True)
    assert first.wait(timeout=10) != 0
    argv = cmd.lock_holder(layout, {"by": "two"}, 60, 1).argv
    second = subprocess.run(argv, input="", capture_output=True, text=True, check=False)
    assert second.returncode == 75
    assert second.stdout.splitlines() == ["WORKING release", "STILLWORKING release"]
    step.wait(timeout=10)
    third = subprocess.run(argv, input="", capture_output=True, text=True, check=False)
    assert third.returncode == 0 and third.stdout.startswith("LOCKED ")


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat: the process's start time (the fields after the name count from 3)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()[19]


def _cmdline_sum(pid: int) -> str:
    return hashlib.sha256(Path(f"/proc/{pid}/cmdline").read_bytes()).hexdigest()


def test_the_holder_records_its_pid_start_time_and_command_line(layout: Layout) -> None:
    holder = _holder(layout, "one")
    pid = int(_line(holder).split()[1])
    record = json.loads(Path(layout.lock_info).read_text())
    assert record["remote_pid"] == pid
    assert record["remote_start"] == _start_time(pid)
    assert record["remote_cmdline"] == _cmdline_sum(pid)
    assert record["by"] == "one"
    result = subprocess.run(cmd.lock_release_forced(layout).argv, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [f"ENDED {pid}"]
    assert holder.wait(timeout=10) != 0
    assert not Path(layout.lock_info).exists()


@pytest.mark.parametrize("forged", ["pid only", "wrong start time", "wrong command line", "all but a byte"])
def test_a_forced_release_never_signals_a_process_that_is_not_the_lock_s_holder(
    layout: Layout, forged: str
) -> None:
    # A stale record whose pid now belongs to an unrelated process (pid reuse): it must survive.
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        record: dict[str, object] = {"by": "gone", "remote_pid": unrelated.pid}
        if forged != "pid only":
            record["remote_start"] = _start_time(unrelated.pid)
            record["remote_cmdline"] = _cmdline_sum(unrelated.pid)
        if forged == "wrong start time":
            record["remote_start"] = str(int(_start_time(unrelated.pid)) + 1)
        elif forged == "wrong command line":
            record["remote_cmdline"] = hashlib.sha256(b"bash\0-c\0").hexdigest()
        elif forged == "all but a byte":
            record["remote_cmdline"] = str(record["remote_cmdline"])[:-1] + "0"
        Path(layout.lock_info).write_text(json.dumps(record) + "\n")
        result = subprocess.run(
            cmd.lock_release_forced(layout).argv, capture_output=True, text=True, check=True
        )
        with pytest.raises(subprocess.TimeoutExpired):  # a signal sent would have ended it by then
            unrelated.wait(timeout=0.5)
        assert result.stdout.splitlines() == [f"GONE {unrelated.pid}"]
        assert not Path(layout.lock_info).exists()  # the stale record is removed all the same
    finally:
        unrelated.kill()
        unrelated.wait()


def test_lock_release_says_whether_it_ended_the_holder_or_found_it_gone() -> None:
    record = '{"by": "ann@laptop", "pid": 7, "action": "push", "release": "r2", "since": "S"}'
    assert released(True, record, "ENDED 42\n") == (
        "released (was held by ann@laptop (pid 7, push of release r2, since S); ended its process on the "
        "host, pid 42)"
    )
    gone = released(False, record, "GONE 42\n")
    assert gone.startswith("released; its holder, ann@laptop (pid 7, push of release r2, since S), no longer")
    assert "pid 42 is not the process that took the lock" in gone and "nothing was signalled" in gone
    assert released(False, None, "") == "was free"


def test_a_step_woken_by_its_holder_s_exit_does_not_run(layout: Layout) -> None:
    # The holder has exited but is not reaped yet (a zombie, as it is for an instant after its exit
    # freed the work lock the step was waiting for): kill -0 still finds its pid, the guard must not.
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    Path(layout.lock_info).write_text(f'{{"remote_pid": {zombie.pid}, "by": "gone"}}\n')
    ran = subprocess.run(
        cmd.guarded(layout, zombie.pid, "health", ("echo", "the step ran")),
        capture_output=True,
        text=True,
        check=False,
    )
    zombie.wait()
    assert ran.returncode == cmd.LOST_LOCK and "the step ran" not in ran.stdout, ran.stdout
    assert "no longer holds the deploy lock" in ran.stdout
