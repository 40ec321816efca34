"""What a run of the checks found: each Result after suppressions, the Suppression that hid it, a Report."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date

from deploy.checker.layers import Finding, Severity
from deploy.checker.registry import Check

SUPPRESSIONS_FILE = "deploy-check.yaml"


@dataclass(frozen=True)
class Suppression:
    """One accepted finding: which check, optionally where, why, and until when."""

    id: str
    reason: str
    expires: date | None
    path: str | None = None
    file: str = SUPPRESSIONS_FILE
    line: int | None = None

    @property
    def inline(self) -> bool:
        return self.expires is None

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def matches(self, check_id: str, path: str | None) -> bool:
        if self.id.upper() != check_id.upper():
            return False
        if self.path is None:
            return True
        return path is not None and (fnmatch.fnmatch(path, self.path) or path == self.path.rstrip("/"))


@dataclass(frozen=True)
class Result:
    """One finding of one check, after suppressions."""

    check: Check
    finding: Finding
    severity: Severity
    suppressed_by: Suppression | None = None
    #: Why the finding still reports although a suppression matched (it expired).
    note: str | None = None

    @property
    def suppressed(self) -> bool:
        return self.suppressed_by is not None


@dataclass
class Report:
    """Everything a run found: results, checks skipped (and why), checks that passed, notes."""

    results: list[Result] = field(default_factory=list)
    skipped: list[tuple[Check, str]] = field(default_factory=list)
    passed: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    root: str = "."
    #: Where file paths are relative to in SARIF and GitHub output (the repository, usually the
    #: current directory), and the project's path from there ("" or "playbooks/app/").
    base: str = "."
    prefix: str = ""
    #: The file that findings without a file of their own point at (deploy.yaml, or the app module).
    anchor: str = "."

    @property
    def active(self) -> list[Result]:
        return [r for r in self.results if not r.suppressed]

    @property
    def suppressed(self) -> list[Result]:
        return [r for r in self.results if r.suppressed]

    def failing(self, threshold: Severity) -> list[Result]:
        return [r for r in self.active if r.severity >= threshold]

    def ids(self) -> set[str]:
        return {r.check.id for r in self.active}
