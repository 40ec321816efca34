"""The runner: every selected check whose layers are available, on one Context; suppressions applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from deploy.checker.context import Context
from deploy.checker.layers import Finding, Severity, Skip
from deploy.checker.registry import AREAS, Check
from deploy.checker.results import Report, Result, Suppression
from deploy.checker.suppress import apply


def run(
    checks: list[Check],
    ctx: Context,
    suppressions: Sequence[Suppression] = (),
    today: date | None = None,
) -> Report:
    """Run every check whose layers are available; apply file and inline suppressions."""
    apps = ctx.project.apps
    anchor = ctx.config_file if ctx.config is not None and ctx.config_file else apps[0].file if apps else "."
    report = Report(checks=list(checks), root=str(ctx.root), base=str(ctx.root), anchor=anchor or ".")
    for c in checks:
        missing = [reason for layer in c.layers if (reason := ctx.unavailable(layer))]
        if missing:
            report.skipped.append((c, missing[0]))
            continue
        try:
            findings = list(c.func(ctx))
        except Skip as exc:
            report.skipped.append((c, str(exc)))
            continue
        except Exception as exc:
            findings = [
                Finding(
                    f"the check itself failed ({type(exc).__name__}: {exc}); please report this",
                    severity=max(c.severity, Severity.HIGH),
                )
            ]
        if not findings:
            report.passed.append(c)
        for f in findings:
            report.results.append(Result(c, f, f.severity or c.severity))
    _apply_supersedes(report)
    ran = {c.id for c in checks} - {c.id for c, _ in report.skipped}
    report.results, notes = apply(report.results, suppressions, ctx.project, today or date.today(), ran)
    report.notes.extend(notes)
    report.notes.extend(
        f"{m.path}: cannot be parsed ({m.syntax_error}); the source checks could not read it"
        for m in ctx.project.python
        if m.syntax_error
    )
    report.notes.extend(ctx.notes)
    report.results.sort(
        key=lambda r: (AREAS.index(r.check.area), r.check.id, r.finding.file or "", r.finding.line or 0)
    )
    return report


def _apply_supersedes(report: Report) -> None:
    """Drop the findings of checks that a check which ran replaces; report those checks as skipped.

    Whether the precise check confirmed the problem (it reports it itself) or refuted it (the imported
    app sets what the source seemed to miss), one finding per problem remains.
    """
    crashed = {r.check.id for r in report.results if r.finding.message.startswith("the check itself failed")}
    skipped = {c.id for c, _ in report.skipped}
    by: dict[str, Check] = {}
    for c in report.checks:
        if c.id in skipped or c.id in crashed:
            continue
        for old in c.supersedes:
            by.setdefault(old, c)
    if not by:
        return
    for c in report.checks:
        if c.id in by and c.id not in skipped:
            newer = by[c.id]
            report.skipped.append((c, f"superseded by {newer.id} ({newer.title})"))
    report.results = [r for r in report.results if r.check.id not in by]
    report.passed = [c for c in report.passed if c.id not in by]
