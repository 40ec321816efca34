"""A push gathers the hosts' facts while it takes the deploy lock (one round trip less), and keeps them
only where they are the state under the lock. The real lock holder and fact probe run here (bash,
python3); the decision is tested with an executor that answers with the probe's real output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from deploy.cli.common import LockedFacts
from deploy.layout import Layout
from deploy.plan import Command
from deploy.remote import commands as cmd
from deploy.remote.executor import LockResult
from deploy.remote.facts import HostState, parse_state, probe_command
from tests.unit.push.test_lock import lock_layout
from tests.unit.push.test_plans import CONFIG
from tests.unit.remote.test_jobs import run_probe

pytestmark = pytest.mark.unit


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return lock_layout(tmp_path)


def passive(tmp_path: Path, layout: Layout) -> HostState:
    return run_probe(
        tmp_path,
        CONFIG,
        passive=True,
        lock_file=layout.lock_file,
        lock_info=layout.lock_info,
        work_file=layout.work_file,
    )


def take(layout: Layout) -> tuple[subprocess.Popen[str], str]:
    """A holder that took the lock, and the stamp it told."""
    argv = cmd.lock_holder(layout, {"by": "me", "action": "push", "release": "r"}, 60, 5).argv
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    line = holder.stdout.readline().strip()
    word, pid, stamp = line.split(maxsplit=2)
    assert (word, pid.isdigit()) == ("LOCKED", True), line
    return holder, stamp


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("release\n")
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0


def test_the_holder_tells_the_stamp_the_probe_read_when_nothing_ran_between(
    tmp_path: Path, layout: Layout
) -> None:
    Path(layout.work_file).write_text("999999999 finish\n")  # an earlier push's step, long ended
    before = passive(tmp_path, layout)
    assert before.lock.quiet and before.lock.stamp
    holder, stamp = take(layout)
    assert stamp == before.lock.stamp
    release(holder)


def test_a_step_or_a_holder_between_probe_and_lock_changes_the_stamp(tmp_path: Path, layout: Layout) -> None:
    holder, _ = take(layout)
    release(holder)
    read = passive(tmp_path, layout)
    # Another push took the lock and ran a step after the probe read the host (the guard adds a line).
    other, _ = take(layout)
    pid = Path(layout.lock_info).read_text().split('"remote_pid": ')[1].split(",")[0]
    subprocess.run(cmd.guarded(layout, int(pid), "upload", ("true",)), check=True)
    release(other)
    holder, stamp = take(layout)
    assert stamp != read.lock.stamp
    release(holder)
    # Only taken and released (no step): the holder emptied the file, which changed it too.
    read = passive(tmp_path, layout)
    other, _ = take(layout)
    release(other)
    holder, stamp = take(layout)
    assert stamp != read.lock.stamp
    release(holder)


def test_a_holder_or_a_running_step_makes_the_probe_not_quiet(tmp_path: Path, layout: Layout) -> None:
    holder, _ = take(layout)
    assert not passive(tmp_path, layout).lock.quiet  # the holder's record is there
    release(holder)
    assert passive(tmp_path, layout).lock.quiet
    Path(layout.work_file).write_text(f"{os.getpid()} release\n")  # a step that still runs
    assert not passive(tmp_path, layout).lock.quiet


class Answers:
    """Answers gather with fixed probe output (passive or not), counting the calls of each."""

    def __init__(self, early: str, late: str) -> None:
        self.early, self.late = early, late
        self.calls: list[str] = []

    def gather(self, host: str, command: Command) -> str:
        is_passive = json.loads(command.argv[-1])["passive"]
        self.calls.append("passive" if is_passive else "again")
        return self.early if is_passive else self.late


def probe_output(tmp_path: Path, layout: Layout, marker: str) -> str:
    Path(layout.work_file).touch()
    state = passive(tmp_path, layout)
    assert state.lock.stamp
    return json.dumps(
        {"cores": 1, "base_entries": [marker], "lock": {"stamp": state.lock.stamp, "quiet": True}}
    )


@pytest.mark.parametrize(
    ("lock", "kept"),
    [
        ({}, True),
        ({"stamp": "1 0 0.000000000 0.000000000"}, False),  # something ran in between
        ({"stamp": None}, False),  # a holder that told no stamp
        ({"waited": True}, False),  # the holder waited for a draining holder or a step
        ({"record": '{"by": "gone"}'}, False),  # taken over from an interrupted push
    ],
)
def test_facts_are_kept_only_when_they_are_the_state_under_the_lock(
    tmp_path: Path, layout: Layout, lock: dict[str, object], kept: bool
) -> None:
    early = probe_output(tmp_path, layout, "early")
    stamp = json.loads(early)["lock"]["stamp"]
    answers = Answers(early, json.dumps({"cores": 1, "base_entries": ["again"]}))
    facts = LockedFacts(answers, CONFIG)  # type: ignore[arg-type]
    facts.join()
    names = list(facts.found)
    assert len(names) == len(CONFIG.server.hosts) > 1
    results = {name: LockResult(name, True, **{"stamp": stamp, **lock}) for name in names}
    states = facts.states(results)
    assert set(states) == set(names)
    assert all(s.base_entries == (["early"] if kept else ["again"]) for s in states.values())
    assert answers.calls.count("again") == (0 if kept else len(names))


def test_a_quiet_probe_is_required_too(tmp_path: Path, layout: Layout) -> None:
    noisy = json.loads(probe_output(tmp_path, layout, "early"))
    noisy["lock"]["quiet"] = False
    answers = Answers(json.dumps(noisy), json.dumps({"cores": 1, "base_entries": ["again"]}))
    facts = LockedFacts(answers, CONFIG)  # type: ignore[arg-type]
    facts.join()
    results = {name: LockResult(name, True, stamp=noisy["lock"]["stamp"]) for name in facts.found}
    assert all(s.base_entries == ["again"] for s in facts.states(results).values())
    assert parse_state("h", json.dumps(noisy)).lock.stamp == noisy["lock"]["stamp"]
    assert json.loads(probe_command(CONFIG, passive=True).argv[-1])["passive"] is True
