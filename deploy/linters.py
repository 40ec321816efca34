"""Run the external linters that `deploy check` builds on (systemd-analyze, hadolint, gixy) on texts.

The only place the checks start a program: each function takes file contents, writes what the tool
needs into a temporary folder, runs it, and returns its parsed answer. A missing tool or an answer
that cannot be read raises `LinterUnavailable`, which the checks turn into "skipped".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

TIMEOUT = 60
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)\s+(\S+)")


class LinterUnavailable(Exception):
    """The tool is not installed, or gave an answer that cannot be read."""


@dataclass(frozen=True)
class Exposure:
    """systemd-analyze security's overall score of a unit (0 locked down .. 10 unsafe)."""

    score: float
    level: str


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LinterUnavailable(f"{name} is not installed")
    return path


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise LinterUnavailable(f"{PurePosixPath(argv[0]).name} took longer than {TIMEOUT} s") from None


def systemd_exposure(unit_name: str, text: str) -> Exposure:
    """Score a unit file offline (`systemd-analyze security --offline=true`)."""
    tool = _tool("systemd-analyze")
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / unit_name.replace("@.service", "@check.service")
        unit.write_text(text, encoding="utf-8")
        proc = _run([tool, "security", "--offline=true", "--no-pager", str(unit)])
    match = _EXPOSURE.search(proc.stdout + proc.stderr)
    if match is None:
        raise LinterUnavailable(
            f"systemd-analyze security gave no score: {(proc.stderr or proc.stdout).strip()[:200]}"
        )
    return Exposure(float(match.group(1)), match.group(2))


def hadolint(text: str) -> list[dict[str, Any]]:
    """hadolint's issues for a Dockerfile (dicts with code, level, line, message)."""
    proc = _run([_tool("hadolint"), "-f", "json", "--no-fail", "-"], stdin=text)
    try:
        issues = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise LinterUnavailable(f"hadolint failed: {proc.stderr.strip()[:200]}") from None
    return [i for i in issues if isinstance(i, dict)]


def gixy(
    files: dict[str, str], site: str, snippets_dir: str = "/etc/nginx/snippets/"
) -> list[dict[str, Any]]:
    """gixy's issues for an Nginx site, its snippets (`files` by path) resolved from a temporary folder."""
    tool = _tool("gixy")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, text in files.items():
            text = re.sub(rf"include\s+{re.escape(snippets_dir)}", f"include {root}/", text)
            (root / PurePosixPath(path).name).write_text(text, encoding="utf-8")
        (root / "nginx.conf").write_text(
            f"events {{}}\nhttp {{\n    include {root / PurePosixPath(site).name};\n}}\n", encoding="utf-8"
        )
        proc = _run([tool, "-f", "json", str(root / "nginx.conf")])
    try:
        issues = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise LinterUnavailable(f"gixy failed: {(proc.stderr or proc.stdout).strip()[:200]}") from None
    return [i for i in issues if isinstance(i, dict)]
