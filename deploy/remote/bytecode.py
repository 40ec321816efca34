"""Bytecode of a new venv, compiled after the switch (issue #19): the installers fill venvs without
compiling (`pip --no-compile`, uv without `--compile-bytecode`), and once the new release serves, a
transient systemd unit compiles the venv at idle CPU priority, so the push and its health gate do not
wait for it. Python's compileall writes each .pyc to a temporary file and renames it into place, so
a release that starts (or a push, or a rollback) while it runs only ever reads whole files; until it
is done, imports compile in memory (the venv is root's: the app cannot write .pyc into it)."""

from __future__ import annotations

from deploy.layout import Layout
from deploy.plan import Command
from deploy.remote.scripts import script

#: The marker a venv gets once its bytecode is compiled.
COMPILED = ".deploy-compiled"

#: The program the unit runs (arguments: the venv, uv's cache or "", the marker).
_COMPILE = script("bytecode.py")


def compile_unit(layout: Layout, requirements_hash: str) -> str:
    """The transient unit that compiles the venv of `requirements_hash`."""
    return f"{layout.app}-bytecode-{requirements_hash}.service"


def compile_later(
    layout: Layout, requirements_hash: str, uv_cache: str = "", delay_seconds: float = 1.0
) -> Command:
    """Compile the venv's bytecode `delay_seconds` after the switch, at idle CPU and I/O priority
    (a transient timer, so the push need not wait and a push ended right after its switch still
    compiles). With `uv_cache` (push.installer uv), the cache's packages are compiled too, and the
    venvs uv fills from it later get their .pyc at install time. Not checked: a unit of that name
    that still runs compiles the same venv already."""
    venv = layout.venv(requirements_hash)
    return Command(
        (
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={compile_unit(layout, requirements_hash)}",
            f"--on-active={delay_seconds:g}s",
            "--timer-property=AccuracySec=100ms",
            "--nice=19",
            "--property=CPUWeight=idle",
            "--property=IOSchedulingClass=idle",
            f"{venv}/bin/python",
            "-I",
            "-c",
            _COMPILE,
            venv,
            uv_cache,
            f"{venv}/{COMPILED}",
        ),
        f"compile the bytecode of {venv} in the background, from {delay_seconds:g}s after the switch",
        sudo=True,
        check=False,
    )
