"""`python -m deploy`, made to stop at a chosen point of a push so that a fault test can kill it there.

Test-only: nothing in the `deploy` package reads these variables; this file wraps the real command line
(same code, same SSH connections and lock) and patches two seams in this process only.

DEPLOY_TEST_PAUSE_AT
  "STEP"        each host's thread (only DEPLOY_TEST_PAUSE_HOST's, when set) stops when STEP starts on
                it, right after the start event is printed and before anything of the step is sent
                (the previous step has finished on that host).
  "half:STEP"   the first script of STEP larger than 4 KiB is half sent, then the thread stops: the host
                has received a truncated script when the process is killed.
While stopped it prints {"event": "paused", "host": ..., "step": ...} and waits for the file named by
DEPLOY_TEST_RESUME_FILE (or 300 s), then goes on as if nothing happened.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paramiko

from deploy import cli  # cli first: it registers the commands
from deploy.cli import common as cli_common
from deploy.remote.executor import SSHExecutor

MODE, _, STEP = os.environ.get("DEPLOY_TEST_PAUSE_AT", "").rpartition(":")
HOST = os.environ.get("DEPLOY_TEST_PAUSE_HOST", "")
RESUME = Path(os.environ.get("DEPLOY_TEST_RESUME_FILE", "/nonexistent"))
_current = threading.local()
_print = threading.Lock()


def pause(host: str, step: str) -> None:
    with _print:
        print(json.dumps({"event": "paused", "host": host, "step": step}), flush=True)
    deadline = time.monotonic() + 300
    while not RESUME.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


_event = cli_common.Printer.event


def event(self: cli_common.Printer, ev: Any) -> None:
    with _print:  # hosts' threads print events at the same time: one whole line each
        _event(self, ev)
    if ev.status == "start" and ev.step == STEP and MODE == "" and HOST in ("", ev.host):
        pause(ev.host, ev.step)


_run_step = SSHExecutor.run_step


def run_step(self: SSHExecutor, host: str, step: Any) -> Any:
    _current.step, _current.host, _current.done = step.name, host, False
    try:
        return _run_step(self, host, step)
    finally:
        _current.step = None


_sendall = paramiko.Channel.sendall


def sendall(self: paramiko.Channel, data: bytes) -> None:
    if MODE == "half" and getattr(_current, "step", None) == STEP and not _current.done and len(data) > 4096:
        _current.done = True
        half = len(data) // 2
        _sendall(self, data[:half])
        pause(_current.host, STEP)
        data = data[half:]
    _sendall(self, data)


cli_common.Printer.event = event  # type: ignore[method-assign,assignment]
SSHExecutor.run_step = run_step  # type: ignore[method-assign]
paramiko.Channel.sendall = sendall  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    sys.exit(cli.main())
