"""Suppressions: one reviewed file with a reason and an expiry for each, or inline with a reason.

`deploy-check.yaml` (next to deploy.yaml):

    suppressions:
      - id: PERF003
        path: app/*.py          # optional: only findings in these files
        reason: nothing here is worth caching yet
        expires: 2026-12-31     # after this date the finding reports again

Inline, on the line of the finding or on a comment line just above it:
`# deploy: ignore[SEC009] the table name comes from a fixed allow-list`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.checker.results import SUPPRESSIONS_FILE, Suppression
from deploy.config.loader import ConfigError, Problem, parse_yaml, read_text

if TYPE_CHECKING:
    from deploy.checker.results import Result
    from deploy.project.scan import Project

_KEYS = {"id", "path", "reason", "expires"}


def parse(text: str, file: str = SUPPRESSIONS_FILE) -> list[Suppression]:
    """Validate a suppressions file; every problem names file, line and key (ConfigError)."""
    doc = parse_yaml(text, file)
    data: Any = doc.data
    problems: list[Problem] = []
    if data in (None, {}):
        return []
    if not isinstance(data, dict) or set(data) - {"suppressions"}:
        raise ConfigError([Problem(file, 1, (), "expected a mapping with one key, suppressions: (a list)")])
    items = data.get("suppressions") or []
    if not isinstance(items, list):
        raise ConfigError(
            [Problem(file, doc.lines.get(("suppressions",)), ("suppressions",), "expected a list")]
        )
    out: list[Suppression] = []
    for index, item in enumerate(items):
        path = ("suppressions", index)
        line = doc.lines.get(path)
        if not isinstance(item, dict):
            problems.append(Problem(file, line, path, "expected a mapping with id, reason and expires"))
            continue
        for key in sorted(set(item) - _KEYS):
            problems.append(
                Problem(
                    file,
                    doc.lines.get((*path, key), line),
                    (*path, key),
                    f"unknown key {key!r}; expected one of: id, path, reason, expires",
                )
            )
        check_id = item.get("id")
        if not isinstance(check_id, str) or not check_id.strip():
            problems.append(Problem(file, line, (*path, "id"), "expected the id of a check, such as SEC001"))
        reason = item.get("reason")
        if not isinstance(reason, str) or len(reason.strip()) < 3:
            problems.append(
                Problem(
                    file,
                    doc.lines.get((*path, "reason"), line),
                    (*path, "reason"),
                    "every suppression needs a reason (why this finding is acceptable)",
                )
            )
        expires = item.get("expires")
        if not isinstance(expires, date):
            problems.append(
                Problem(
                    file,
                    doc.lines.get((*path, "expires"), line),
                    (*path, "expires"),
                    f"expected a date such as 2026-12-31, got {expires!r}",
                )
            )
        where = item.get("path")
        if where is not None and not isinstance(where, str):
            problems.append(
                Problem(
                    file,
                    doc.lines.get((*path, "path"), line),
                    (*path, "path"),
                    "expected a file path or glob such as app/*.py",
                )
            )
        if isinstance(check_id, str) and isinstance(reason, str) and isinstance(expires, date):
            out.append(Suppression(check_id.strip().upper(), reason.strip(), expires, where, file, line))
    if problems:
        raise ConfigError(problems)
    return out


def load(project_dir: Path, file: str | None = None) -> list[Suppression]:
    """Read the project's suppressions file if there is one (the CLI's only call here)."""
    path = Path(file) if file else project_dir / SUPPRESSIONS_FILE
    if not path.is_file():
        if file:
            raise ConfigError([Problem(str(path), None, (), "no such suppressions file")])
        return []
    return parse(
        read_text(path),
        str(path.relative_to(project_dir) if path.is_relative_to(project_dir) else path),
    )


def apply(
    results: list[Result],
    suppressions: Sequence[Suppression],
    project: Project,
    today: date,
    ran: set[str] | None = None,
) -> tuple[list[Result], list[str]]:
    """Mark results suppressed (file entries that have not expired, inline comments with a reason)."""
    notes: list[str] = []
    used: set[int] = set()
    out: list[Result] = []
    for result in results:
        finding = result.finding
        matched: Suppression | None = None
        note: str | None = None
        for index, s in enumerate(suppressions):
            if s.matches(result.check.id, finding.file):
                used.add(index)
                if s.expires is not None and s.expires < today:
                    note = f"suppression expired on {s.expires.isoformat()} ({s.where()}): {s.reason}"
                    continue
                matched = s
                break
        if matched is None and finding.file and finding.line:
            inline = project.inline_ignores(finding.file, finding.line)
            reason = inline.get(result.check.id.upper())
            if reason is not None:
                if reason:
                    matched = Suppression(result.check.id, reason, None, None, finding.file, finding.line)
                else:
                    note = "inline ignore without a reason is not honoured; add one after the brackets"
        out.append(replace(result, suppressed_by=matched, note=None if matched else note))
    for index, s in enumerate(suppressions):
        if index not in used and (ran is None or s.id in ran):
            notes.append(f"{s.where()}: suppression of {s.id} matched nothing; remove it")
    return out, notes
