"""The CI gate shipped in the repository: the GitHub workflow and the pre-commit hook are valid and work."""

from __future__ import annotations

import importlib.resources
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / ".github" / "workflows" / "deploy-check.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"


@pytest.mark.unit
def test_workflow_validates_against_the_github_workflow_schema() -> None:
    schema_file = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    )
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub reads YAML 1.2
    jsonschema.validate(workflow, schema)
    steps = workflow["jobs"]["deploy-check"]["steps"]
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif@") for s in steps)
    assert workflow["permissions"]["security-events"] == "write"


@pytest.mark.unit
def test_workflow_commands_run_here(tmp_path: Path) -> None:
    """Run the workflow's deploy commands as written, on the example app (our own CI gate)."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    env = {**os.environ, **workflow["env"], "PYTHONPATH": str(REPO)}
    commands = [
        s["run"]
        for s in workflow["jobs"]["deploy-check"]["steps"]
        if s.get("run", "").startswith("deploy check")
    ]
    assert len(commands) == 2
    for command in commands:
        line = command.removesuffix(" || true").replace('"$PROJECT"', str(REPO / env["PROJECT"]))
        line = line.replace('"$FAIL_ON"', env["FAIL_ON"])
        argv = [sys.executable, "-m", "deploy", *shlex.split(line)[1:]]
        out = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr
    sarif = json.loads((tmp_path / "deploy-check.sarif").read_text())
    assert sarif["version"] == "2.1.0"


@pytest.mark.unit
def test_pre_commit_manifest_is_valid() -> None:
    from pre_commit.clientlib import load_manifest

    (hook,) = load_manifest(str(HOOKS))
    assert hook["id"] == "deploy-check"
    assert hook["entry"] == "deploy check"
    assert hook["pass_filenames"] is False


@pytest.mark.slow
def test_pre_commit_hook_runs_from_this_repository(tmp_path: Path) -> None:
    """`pre-commit try-repo` installs this repository into its own environment and runs the hook."""
    if shutil.which("git") is None:
        pytest.fail("git is needed")
    app = tmp_path / "app"
    shutil.copytree(REPO / "tests" / "fixtures" / "apps" / "single", app)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=app, check=True)
    subprocess.run([*git, "add", "-A"], cwd=app, check=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "deploy-check", "--all-files"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "deploy check" in out.stdout and "Failed" in out.stdout
    assert "critical SEC002 app.py:6: SECRET_KEY is a string literal in the source" in out.stdout
