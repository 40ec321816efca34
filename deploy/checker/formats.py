"""Formats of `deploy check`: text for people; JSON, SARIF 2.1.0, JUnit XML, GitHub annotations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deploy import __version__
from deploy.checker.layers import Severity
from deploy.checker.registry import AREAS, Check, describe
from deploy.checker.results import Report, Result

FORMATS = ("text", "json", "sarif", "junit", "github")
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_COLOURS = {Severity.CRITICAL: "red", Severity.HIGH: "red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}


def _where(result: Result) -> str:
    f = result.finding
    if f.host:
        return f.host
    if f.file and f.line:
        return f"{f.file}:{f.line}"
    return f.file or "(project)"


def text(report: Report, threshold: Severity, colour: bool = False, verbose: bool = False) -> str:
    """Findings grouped by area, worst first within a check; skipped checks named; a summary line."""

    def style(s: str, **kw: Any) -> str:
        return click.style(s, **kw) if colour else s

    lines: list[str] = []
    for area in AREAS:
        results = [r for r in report.active if r.check.area == area]
        if not results:
            continue
        lines.append(style(area.capitalize(), bold=True))
        for r in results:
            sev = style(f"{r.severity.label:<8}", fg=_COLOURS[r.severity], bold=r.severity >= Severity.HIGH)
            lines.append(f"  {sev} {style(r.check.id, bold=True)} {_where(r)}: {r.finding.message}")
            if r.note:
                lines.append(f"           {style('note:', fg='magenta')} {r.note}")
        lines.append("")
    if verbose and report.suppressed:
        lines.append(style("Suppressed", bold=True))
        for r in report.suppressed:
            s = r.suppressed_by
            assert s is not None
            until = f", until {s.expires.isoformat()}" if s.expires else ""
            lines.append(f"  {r.check.id} {_where(r)}: {s.reason} ({s.where()}{until})")
        lines.append("")
    if report.skipped:
        lines.append(style("Skipped", bold=True))
        if verbose:
            for c, reason in report.skipped:
                lines.append(f"  {c.id} {c.title}: {reason}")
        else:
            by_reason: dict[str, list[str]] = {}
            for c, reason in report.skipped:
                by_reason.setdefault(reason, []).append(c.id)
            for reason, ids in by_reason.items():
                lines.append(
                    f"  {len(ids)} check{'s' if len(ids) > 1 else ''} ({', '.join(sorted(ids))}): {reason}"
                )
        lines.append("")
    for note in report.notes:
        lines.append(style("note: ", fg="magenta") + note)
    if report.notes:
        lines.append("")
    counts = {s: sum(1 for r in report.active if r.severity == s) for s in reversed(Severity)}
    found = ", ".join(f"{n} {s.label}" for s, n in counts.items() if n) or "no findings"
    failing = len(report.failing(threshold))
    ran = len(report.checks) - len(report.skipped)
    summary = (
        f"{found}; {ran} check{'s' if ran != 1 else ''} ran, {len(report.skipped)} skipped, "
        f"{len(report.suppressed)} suppressed. "
        + (
            f"{failing} at or above {threshold.label}: failing."
            if failing
            else f"Nothing at or above {threshold.label}."
        )
    )
    lines.append(style(summary, bold=True, fg="red" if failing else "green"))
    return "\n".join(lines) + "\n"


def _result_dict(r: Result) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.check.id,
        "area": r.check.area,
        "severity": r.severity.label,
        "title": r.check.title,
        "message": r.finding.message,
        "file": r.finding.file,
        "line": r.finding.line,
    }
    if r.finding.host:
        out["host"] = r.finding.host
    if r.note:
        out["note"] = r.note
    if r.suppressed_by is not None:
        s = r.suppressed_by
        out["suppressed"] = {
            "reason": s.reason,
            "where": s.where(),
            "expires": s.expires.isoformat() if s.expires else None,
        }
    return out


def as_json(report: Report, threshold: Severity) -> str:
    doc = {
        "version": __version__,
        "fail_on": threshold.label,
        "failing": len(report.failing(threshold)),
        "findings": [_result_dict(r) for r in report.active],
        "suppressed": [_result_dict(r) for r in report.suppressed],
        "skipped": [{"id": c.id, "reason": reason} for c, reason in report.skipped],
        "passed": [c.id for c in report.passed],
        "notes": list(report.notes),
    }
    return json.dumps(doc, indent=2) + "\n"


_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
}


def _rule(c: Check) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": "".join(w.capitalize() for w in c.title.replace("-", " ").split() if w.isalnum()) or c.id,
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": c.why},
        "help": {"text": f"{c.why}\n\nHow to fix: {c.fix}", "markdown": c.doc()},
        **({"helpUri": c.references[0]} if c.references else {}),
        "defaultConfiguration": {"level": _SARIF_LEVEL[c.severity]},
        "properties": {
            "tags": sorted(
                {c.area, "security"} if c.area == "security" or c.id.startswith("SEC") else {c.area}
            ),
            "security-severity": c.security_severity,
            "precision": "high",
            "problem.severity": {
                Severity.CRITICAL: "error",
                Severity.HIGH: "error",
                Severity.MEDIUM: "warning",
                Severity.LOW: "recommendation",
            }[c.severity],
        },
    }


def sarif(report: Report, threshold: Severity) -> str:
    """SARIF 2.1.0: one run, every check that ran as a rule, results pointing at files and lines."""
    rules = [c for c in report.checks if c.id not in {s.id for s, _ in report.skipped}]
    index = {c.id: i for i, c in enumerate(rules)}
    results = []
    for r in report.results:
        if r.check.id not in index:
            continue
        f = r.finding
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {
                    "uri": report.prefix + (f.file or report.anchor),
                    "uriBaseId": "%SRCROOT%",
                }
            }
        }
        if f.line:
            location["physicalLocation"]["region"] = {"startLine": f.line}
        item: dict[str, Any] = {
            "ruleId": r.check.id,
            "ruleIndex": index[r.check.id],
            "level": _SARIF_LEVEL[r.severity],
            "message": {"text": f.message + (f" ({f.host})" if f.host else "")},
            "locations": [location],
            "partialFingerprints": {"deployFinding/v1": f"{r.check.id}:{f.file or ''}:{f.message}"},
        }
        if r.suppressed_by is not None:
            item["suppressions"] = [
                {
                    "kind": "inSource" if r.suppressed_by.inline else "external",
                    "justification": r.suppressed_by.reason,
                }
            ]
        results.append(item)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "deploy check",
                        "version": __version__,
                        "rules": [_rule(c) for c in rules],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": _file_uri(report.base)}},
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {"level": "note", "message": {"text": f"{c.id} skipped: {reason}"}}
                            for c, reason in report.skipped
                        ],
                    }
                ],
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _file_uri(root: str) -> str:
    return Path(root).resolve().as_uri().rstrip("/") + "/"


def junit(report: Report, threshold: Severity) -> str:
    """JUnit XML: one test suite per area, one test case per check; failures at or above the threshold."""
    suites = ET.Element("testsuites", name="deploy check")
    skipped = dict((c.id, reason) for c, reason in report.skipped)
    for area in AREAS:
        checks = [c for c in report.checks if c.area == area]
        if not checks:
            continue
        suite = ET.SubElement(suites, "testsuite", name=area, tests=str(len(checks)))
        failures = skips = 0
        for c in checks:
            case = ET.SubElement(
                suite, "testcase", classname=f"deploy.check.{area}", name=f"{c.id} {c.title}"
            )
            if c.id in skipped:
                ET.SubElement(case, "skipped", message=skipped[c.id])
                skips += 1
                continue
            found = [r for r in report.active if r.check.id == c.id]
            bad = [r for r in found if r.severity >= threshold]
            if bad:
                failures += 1
                failure = ET.SubElement(
                    case, "failure", message=f"{len(bad)} finding(s)", type=c.severity.label
                )
                failure.text = "\n".join(f"{_where(r)}: {r.finding.message}" for r in found)
            elif found:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(f"{r.severity.label} {_where(r)}: {r.finding.message}" for r in found)
        suite.set("failures", str(failures))
        suite.set("skipped", str(skips))
        suite.set("errors", "0")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(report: Report, threshold: Severity) -> str:
    """GitHub Actions workflow commands: `::error file=…,line=…,title=…::message`."""
    lines = []
    for r in report.active:
        kind = (
            "error" if r.severity >= threshold else ("warning" if r.severity >= Severity.MEDIUM else "notice")
        )
        props = [f"title={_escape(f'{r.check.id} {r.check.title}', prop=True)}"]
        if r.finding.file:
            props.insert(0, f"file={_escape(report.prefix + r.finding.file, prop=True)}")
            if r.finding.line:
                props.insert(1, f"line={r.finding.line}")
        lines.append(f"::{kind} {','.join(props)}::{_escape(r.finding.message)}")
    return "\n".join(lines) + ("\n" if lines else "")


def render(report: Report, fmt: str, threshold: Severity, colour: bool = False, verbose: bool = False) -> str:
    if fmt == "text":
        return text(report, threshold, colour, verbose)
    formatters: dict[str, Callable[[Report, Severity], str]] = {
        "json": as_json,
        "sarif": sarif,
        "junit": junit,
        "github": github,
    }
    return formatters[fmt](report, threshold)


def listing(checks: list[Check], fmt: str) -> str:
    """`deploy check --list`: every check with its id, area, severity, layers and title."""
    if fmt == "json":
        return json.dumps([describe(c) for c in checks], indent=2) + "\n"
    lines = [f"{'ID':<8} {'AREA':<13} {'SEVERITY':<9} {'LAYERS':<16} TITLE"]
    for c in checks:
        layers = ",".join(layer.value for layer in c.layers)
        lines.append(f"{c.id:<8} {c.area:<13} {c.severity.label:<9} {layers:<16} {c.title}")
    return "\n".join(lines) + "\n"
