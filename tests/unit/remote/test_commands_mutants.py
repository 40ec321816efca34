"""The deploy lock's command lines, argument by argument: the programs read them by position ($1...), so
a swapped or missing argument takes the wrong lock (benchmarks/mutation.py: commands, lock builders).
tests/unit/test_push_lock.py runs the same programs for real."""

from __future__ import annotations

import json

import pytest

from deploy.remote import commands as cmd
from tests.unit.push.test_plans import LAYOUT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("create", "word"), [(True, "create"), (False, "exists")])
def test_the_lock_holder_gets_every_path_the_record_and_its_times_in_order(create: bool, word: str) -> None:
    record: dict[str, object] = {"by": "ann", "action": "push"}
    command = cmd.lock_holder(LAYOUT, record, 60, 120, create=create)
    assert command.sudo and command.check
    assert command.description == "take the deploy lock (held while this push runs)"
    assert command.argv == (
        "bash", "-c", cmd.LOCK_HOLDER, "lock", LAYOUT.lock_file, LAYOUT.lock_info,
        json.dumps(record, sort_keys=True), "60", word, LAYOUT.work_file, LAYOUT.release_units, "120",
    )


def test_the_lock_is_made_only_where_setup_asks() -> None:
    assert cmd.lock_holder(LAYOUT, {}, 1, 1).argv[8] == "exists"


def test_a_guarded_step_names_the_work_file_the_record_the_holder_and_the_step_before_its_argv() -> None:
    assert cmd.guarded(LAYOUT, 4242, "switch", ("mv", "a", "b")) == (
        "sh", "-c", cmd.STEP_GUARD, "guard", LAYOUT.work_file, LAYOUT.lock_info, "4242", "switch",
        "mv", "a", "b",
    )


def test_a_forced_release_checks_the_holder_before_it_signals_and_then_removes_the_record() -> None:
    command = cmd.lock_release_forced(LAYOUT)
    assert command.sudo
    assert command.description == (
        "end the lock holder (its pid, start time and command line checked), remove the lock record"
    )
    sh, dash_c, script, name, lock_file, lock_info = command.argv
    assert (sh, dash_c, name) == ("sh", "-c", "unlock")
    assert (lock_file, lock_info) == (LAYOUT.lock_file, LAYOUT.lock_info)
    assert script.startswith(cmd.HOLDER_CHECK)
    assert script[len(cmd.HOLDER_CHECK) :] == (
        'if [ -e "$2" ]; then\n'
        '  if pid=$(holder "$2"); then kill -TERM "$pid" 2>/dev/null; echo "ENDED $pid"; '
        'else echo "GONE $pid"; fi\n'
        "fi\n"
        'rm -f -- "$2"; flock -w 5 "$1" true\n'
    )
