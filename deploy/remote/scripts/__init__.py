"""The programs deploy runs on a host (python3 -c, sh -c), kept as real files so linters and type
checkers read them; `script(name)` returns one's text, which travels in the command line."""

from __future__ import annotations

import functools
import importlib.resources


@functools.cache
def script(name: str) -> str:
    """The text of the host program `name` (a .py or .sh file of this folder)."""
    return importlib.resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
