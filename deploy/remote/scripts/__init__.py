"""The programs deploy runs on a host (python3 -c, sh -c), kept as real files so linters and type
checkers read them; `script(name)` returns one's text, which travels in the command line."""

from __future__ import annotations

import functools
import importlib.resources


@functools.cache
def script(name: str) -> str:
    """The text of the host program `name` (a .py or .sh file of this folder)."""
    return importlib.resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


#: The line that opens a host program's import of the backups' shared module (backup_store.py).
SHARED_IMPORT = "from .backup_store import ("


@functools.cache
def host_program(name: str) -> str:
    """The text of the host program `name` as it travels: one that imports backup_store (the backup
    programs) has that import replaced by the module's own text, since it runs alone on the host (`python3
    -I -c TEXT`, or the one file its timer runs)."""
    text = script(name)
    start = text.find(SHARED_IMPORT)
    if start < 0:
        return text
    end = text.index(")\n", start) + 2
    return text[:start] + script("backup_store.py") + text[end:]
