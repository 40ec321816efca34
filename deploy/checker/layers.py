"""What a check is made of, importing nothing: its severity, the layers it looks at, its findings, Skip."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """How bad a finding is; `--fail-on` compares against it."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"expected one of {', '.join(s.label for s in cls)}, got {text!r}") from None


class Layer(enum.Enum):
    """Where a check looks; a check whose layer is unavailable is skipped, and says why."""

    SOURCE = "source"  # the Python sources, parsed, never imported
    PROJECT = "project"  # the project's other files (requirements, Dockerfile, .env, templates)
    CONFIG = "config"  # deploy.yaml
    IMPORT = "import"  # --import was given (the app may still fail to import)
    EFFECTIVE = "effective"  # the app factory imported in a subprocess (--import), successfully
    RENDERED = "rendered"  # the configs deploy renders from deploy.yaml
    TOOLS = "tools"  # external linters run on rendered files (hadolint, gixy, systemd-analyze)
    LIVE = "live"  # the hosts over SSH and the site over HTTPS (--live -e ENV)


@dataclass(frozen=True)
class Finding:
    """What a check yields: a message and where (file relative to the project, 1-based line)."""

    message: str
    file: str | None = None
    line: int | None = None
    #: Overrides the check's severity for this one finding.
    severity: Severity | None = None
    #: For live findings: the host (or URL) it was seen on.
    host: str | None = None


class Skip(Exception):
    """Raised by a check that cannot run here (a tool is missing); the runner reports it skipped."""
