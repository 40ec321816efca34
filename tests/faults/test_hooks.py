"""Hooks on sandbox hosts: a failing post-push or post-rollback hook is reported (which hook, on
which host, its output) and the command exits 1 while the release stays as it is; -v shows a hook's
output when it succeeds. The secret a hook prints, raw or in base64, never reaches the output or the
audit log: both go through deploy.config.redact."""

from __future__ import annotations

import base64
import json

import pytest

from deploy.sandbox.machines import Sandbox
from tests.faults.faultkit import BASE, assert_serves, configure, fresh, served
from tests.hosts.pushkit import Project, _env

pytestmark = pytest.mark.faults

SECRET = _env()["SECRET_KEY"]
#: Prints the app's secret from the host's env file, raw and in base64 (at an offset), then fails.
LEAKY = "grep -h SECRET_KEY /etc/flaskr/env; grep -h SECRET_KEY /etc/flaskr/env | base64 -w0; echo; exit 4"


def _no_secret(text: str) -> None:
    assert SECRET not in text, text
    for offset in range(3):
        encoded = base64.b64encode(b"x" * offset + SECRET.encode()).decode()
        assert encoded[4:-4] not in text, text  # the middle of the value in base64, at any offset


def test_a_failing_post_push_hook_fails_the_push_names_it_and_keeps_the_release(
    fault_box: Sandbox, live_project: Project
) -> None:
    pre = '[{run: "echo pre-hook-says-hello", on: local}]'
    configure(live_project, hooks=f'{{pre_push: {pre}, post_push: [{{run: "{LEAKY}", on: hosts}}]}}')
    new = fresh()
    live_project.set_version(new)
    try:
        result = live_project.deploy("push", "-v", timeout=240)
    finally:
        configure(live_project)
    out = result.stdout + result.stderr
    print(out)
    assert result.returncode == 1, out
    assert "  pre-push hook output on local:\n    pre-hook-says-hello" in out  # -v: shown although it passed
    for host in live_project.hosts:
        assert f"post-push hook failed on {host.address} (exit 4): {LEAKY}" in out
    assert 'SECRET_KEY="<SECRET_KEY>"' in out
    assert "the release stays, but a post-push hook failed" in out
    _no_secret(out)
    assert_serves(fault_box, live_project, new)
    history = live_project.deploy("history", "--json", check=True).stdout
    assert all(entries[-1]["result"] == "ok" for entries in json.loads(history).values())
    for host in live_project.hosts:
        _no_secret(fault_box.run(host, ["cat", f"{BASE}/.deploy/history.jsonl"], check=True).stdout)


def test_a_failing_post_rollback_hook_fails_the_rollback_and_keeps_the_release(
    fault_box: Sandbox, live_project: Project
) -> None:
    configure(live_project)
    live_project.set_version(fresh())
    before = served(live_project)  # the push above: what the rollback goes back to is older
    live_project.deploy("push", check=True, timeout=240)
    hooks = '{post_rollback: [{run: "printf \\"%s\\\\n\\" \\"$SECRET_KEY\\"; exit 5", on: local}]}'
    configure(live_project, hooks=hooks)
    result = live_project.deploy("rollback", "--json", timeout=240)
    out = result.stdout + result.stderr
    print(out)
    assert result.returncode == 1, out
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (last,) = [e for e in events if e["event"] == "result"]
    assert last["ok"] is False and last["hook_failures"][0].startswith(
        "post-rollback hook failed on local (exit 5)"
    )
    assert "    <SECRET_KEY>" in last["hook_failures"][0]
    _no_secret(out)
    assert_serves(fault_box, live_project, before)
    configure(live_project)
    live_project.deploy("push", check=True, timeout=240)
