"""A step as one shell script: its commands and small uploads in order, stopping at the first failure
and naming it; and how uploads are sent on a channel."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from typing import Any

from deploy.plan import Command, Step, Upload
from deploy.remote.commands import SAFE_FS, write_stdin_argv

#: Marks the failing command in a step script's output: "@@deploy-failed <index> <exit code>".
_FAILED = "@@deploy-failed"
_FAILED_LINE = re.compile(rf"^{_FAILED} (\d+) (\d+)$", re.M)
#: Ends the here-document of an inline upload (base64 never contains '@').
_EOF = "@@DEPLOY_EOF@@"


def display_line(command: Command) -> str:
    """The command line as shown to people: embedded programs are abbreviated."""
    return shlex.join(
        f"<program: {a.count(chr(10))} lines>" if "\n" in a and len(a) > 120 else a for a in command.argv
    )


#: How much of an upload is handed to paramiko at a time (see `send_all`).
SEND_CHUNK = 64 * 1024


def send_all(channel: Any, data: bytes) -> None:
    """Send all of `data` on a paramiko channel, in pieces.

    paramiko's own `sendall` copies the rest of the data after every packet it sends (`s = s[sent:]`),
    so its cost grows with the square of the size: 100 MB of wheels went at 1.3 MB/s. Handing it
    64 KiB at a time keeps the copying linear.
    """
    for start in range(0, len(data), SEND_CHUNK):
        channel.sendall(data[start : start + SEND_CHUNK])


#: How every `SAFE_FS` operation is run (deploy.remote.commands).
_SAFE_FS_ARGV = ("python3", "-I", "-S", "-c", SAFE_FS)
#: The operations one `SAFE_FS batch` program may run in a row (`check` guards another program).
_BATCHED = frozenset({"dir", "file", "rm", "prune", "link"})


def _batchable(command: Command | Upload) -> bool:
    if isinstance(command, Upload):
        return True
    return command.check and command.argv[:5] == _SAFE_FS_ARGV and command.argv[5] in _BATCHED


def _upload_argv(upload: Upload) -> tuple[str, ...]:
    """The `SAFE_FS write` command of an inline upload (its bytes follow in base64)."""
    owner, group = upload.owner or "root", upload.group or "root"
    digest = hashlib.sha256(upload.content).hexdigest()
    return write_stdin_argv(upload.remote_path, upload.mode, owner, group, digest, decode=True)


def _runs(commands: list[Command | Upload]) -> list[list[tuple[int, Command | Upload]]]:
    """The commands with their index, consecutive `SAFE_FS` operations and uploads in one run each."""
    out: list[list[tuple[int, Command | Upload]]] = []
    for index, command in enumerate(commands):
        if out and _batchable(command) and _batchable(out[-1][-1][1]):
            out[-1].append((index, command))
        else:
            out.append([(index, command)])
    return out


def _batch(run: list[tuple[int, Command | Upload]]) -> list[str]:
    """One `SAFE_FS batch` program for `run`: each operation's arguments in hex (no quoting to get
    wrong) and each upload's bytes in base64, as `safe_fs.batch` reads them; it prints the failure
    line of the first operation that fails."""
    lines = [
        f"{shlex.join((*_SAFE_FS_ARGV, 'batch'))} <<'{_EOF}' "
        f'|| {{ rc=$?; echo "{_FAILED} {run[0][0]} $rc"; exit "$rc"; }}',
        str(len(run)),
    ]
    for index, command in run:
        # The operation's own arguments, as the one-program form passes them to SAFE_FS.
        fields = (_upload_argv(command) if isinstance(command, Upload) else command.argv)[5:]
        lines.append(" ".join([str(index), *("x" + field.encode().hex() for field in fields), ";"]))
        if isinstance(command, Upload):
            lines.append(base64.encodebytes(command.content).decode().rstrip("\n"))
            lines.append("@@")
    lines.append(_EOF)
    return lines


def step_script(commands: list[Command | Upload]) -> str:
    """One POSIX shell script that runs `commands` in order and stops at the first failure, naming it.

    An upload travels inside the script as base64 in a here-document (the script arrives on standard
    input, so file contents never appear on a command line), decoded into place atomically.
    Consecutive uploads and `SAFE_FS` operations run in one program (`_batch`).
    """
    lines = ["exec 2>&1"]
    for run in _runs(commands):
        if len(run) > 1:
            lines.extend(_batch(run))
            continue
        index, command = run[0]
        if isinstance(command, Upload):
            argv = _upload_argv(command)
            data = base64.encodebytes(command.content).decode()
            lines.append(
                f"{Command(argv).line()} <<'{_EOF}' "
                f'|| {{ rc=$?; echo "{_FAILED} {index} $rc"; exit "$rc"; }}'
            )
            lines.append(data.rstrip("\n"))
            lines.append(_EOF)
        elif command.check:
            lines.append(
                f'{command.line()} </dev/null || {{ rc=$?; echo "{_FAILED} {index} $rc"; exit "$rc"; }}'
            )
        else:
            lines.append(f"{command.line()} </dev/null || true")
    return "\n".join(lines) + "\n"


#: Uploads up to this size travel inside the step's script; larger ones stream on their own channel.
INLINE_UPLOAD_BYTES = 8 * 1024 * 1024


def _groups(step: Step) -> list[Upload | list[Command | Upload]]:
    """Consecutive actions grouped into one script each; only very large uploads go on their own."""
    out: list[Upload | list[Command | Upload]] = []
    for action in step.actions:
        if isinstance(action, Upload) and len(action.content) > INLINE_UPLOAD_BYTES:
            out.append(action)
        elif out and isinstance(out[-1], list):
            out[-1].append(action)
        else:
            out.append([action])
    return out
