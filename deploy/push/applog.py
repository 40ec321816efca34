"""What to show of a slot's log when it failed to start: the app's traceback, else the last lines.

The diagnose command (`commands.slot_log`) reads the slot's journal since the push started it, in
journalctl's `short-unix` format, so each line names the process that wrote it. When the app could
not be imported, the rendered gunicorn.conf.py wrote its traceback, indented, under one marker line
(once per process that tried: the master with preload_app, else every worker); the first such block
is the app's own error, whatever Gunicorn logged around or after it. Without a marker (a
gunicorn.conf.py of the project's own), the first Python traceback stands in for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from deploy.config.redact import Redactor

#: The line templates/gunicorn.conf.py.j2 writes above the traceback of an app that cannot be imported.
IMPORT_FAILED = re.compile(r"^deploy: the app .+ could not be loaded:$")
TRACEBACK = "Traceback (most recent call last):"
#: `journalctl -o short-unix`: "<seconds since the epoch> <host> <identifier>[<pid>]: <message>".
_SHORT_UNIX = re.compile(r"^\d+(?:\.\d+)? \S+ [^\s\[\]]+(?:\[(?P<pid>\d+)\])?: ?(?P<message>.*)$")
#: A log record of Gunicorn ("[2026-11-24 13:31:52 +0000] [273] [INFO] ...") or of Python's logging.
_RECORD = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]")


@dataclass(frozen=True)
class Entry:
    """One line of the log: the process that wrote it ("" when unknown) and its text."""

    pid: str
    message: str


def entries(log: str) -> list[Entry]:
    """The lines of a `short-unix` journal (other lines are kept whole, with no process)."""
    out = []
    for line in log.splitlines():
        match = _SHORT_UNIX.match(line)
        out.append(Entry(match["pid"] or "", match["message"]) if match else Entry("", line))
    return out


def _block(lines: list[Entry], start: int, marked: bool) -> list[str]:
    """The traceback that begins at `start`: the lines its process wrote next, up to its end.

    A marked block is indented under its marker, so it ends at the process's first other line; a
    plain traceback ends at the process's next log record.
    """
    pid = lines[start].pid
    block = [lines[start].message]
    for entry in lines[start + 1 :]:
        if entry.pid != pid:
            continue  # another process (a worker, systemd) wrote in between
        text = entry.message
        if (marked and not text.startswith("  ")) or (not marked and _RECORD.match(text)):
            break
        block.append(text)
    return block


def excerpt(log: str, tail: int = 15, limit: int = 60) -> str:
    """The app's traceback from a slot's log (at most `limit` lines, the end kept), else its last lines."""
    lines = entries(log)
    start = next((i for i, e in enumerate(lines) if IMPORT_FAILED.match(e.message)), None)
    marked = start is not None
    if start is None:
        start = next((i for i, e in enumerate(lines) if e.message.strip() == TRACEBACK), None)
    if start is None:
        return "\n".join(e.message for e in lines[-tail:]).strip("\n")
    block = _block(lines, start, marked)
    if len(block) > limit:
        # The bottom names the exception and the line that raised it; the top is Gunicorn's frames.
        keep = limit - 3
        block = [*block[:2], f"    ... ({len(block) - 2 - keep} lines left out)", *block[-keep:]]
    return "\n".join(block)


def is_traceback(shown: str) -> bool:
    """Whether `excerpt` found a traceback (else it gave the last lines)."""
    first = shown.split("\n", 1)[0].strip()
    return bool(IMPORT_FAILED.match(first)) or first == TRACEBACK


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with each secret's value, and its common encodings, replaced by its name (config.redact)."""
    return Redactor(secrets)(text)
