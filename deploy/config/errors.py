"""A configuration's problems: each one names the file, the line and the key; ConfigError carries them.

Light on purpose (no YAML, no pydantic): the CLI's error boundary imports it at startup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file."""

    file: str
    line: int | None
    path: KeyPath
    message: str

    @property
    def key(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.path else ""
        # One line, whatever the file held: a key, file name or message with a newline or another
        # control character shows it escaped.
        return one_line(f"{where}:{key} {self.message}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with every control character (newline included) escaped: it prints as one line."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A key written with a newline or another control character is shown escaped: one line.
            name = str(part)
            out += ("." if out else "") + (name if name.isprintable() else repr(name))
    return out
