"""`deploy check` and `deploy explain` as a user runs them: exit codes, formats, plugins, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.checks.support import CLEAN_APP, CONFIG, project

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def deploy(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def no_traceback(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr + out.stdout


def test_clean_project_exits_0(tmp_path: Path) -> None:
    project(tmp_path, {"deploy.yaml": CONFIG})
    out = deploy("check", str(tmp_path), "--ignore", "RND")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no findings" in out.stdout
    assert "needs --import" in out.stdout  # what was skipped is named


def test_findings_at_the_threshold_exit_1_and_below_exit_0(tmp_path: Path) -> None:
    project(
        tmp_path,
        {"deploy.yaml": CONFIG, "requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n"},
    )
    out = deploy("check", str(tmp_path), "--ignore", "RND")
    assert out.returncode == 1
    assert "DEP002 requirements.txt:1: Flask is not pinned (>=3)" in out.stdout
    assert deploy("check", str(tmp_path), "--ignore", "RND", "--fail-on", "high").returncode == 0


def test_no_deploy_yaml_runs_static_checks_and_names_what_it_skipped(tmp_path: Path) -> None:
    project(tmp_path)
    out = deploy("check", str(tmp_path), "-v")
    assert out.returncode == 1  # without a proxy in front, the app itself sets no security headers
    assert "medium   SEC006 app.py:22: no reverse proxy config and the app does not set" in out.stdout
    assert "SEC004 HTTPS is off: no deploy.yaml" in out.stdout
    assert (
        "RND001 Rendered Nginx site lacks security headers: no deploy.yaml to render configs from"
        in out.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "severe"], "--fail-on: expected one of low, medium, high, critical, got 'severe'"),
        (["--live"], "--live needs -e ENV"),
        (["-c", "missing.yaml"], "missing.yaml: no such file"),
        (["-e", "prod"], "there is no"),
        (["--format", "xml"], "Invalid value for '--format'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    project(tmp_path)
    out = deploy("check", str(tmp_path), *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    no_traceback(out)


def test_invalid_deploy_yaml_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    project(tmp_path, {"deploy.yaml": CONFIG.replace("name: demo", "name: Demo App")})
    out = deploy("check", str(tmp_path))
    assert out.returncode == 2
    assert "deploy.yaml:2: app.name: expected a short lower-case name" in out.stderr
    no_traceback(out)


def test_invalid_suppressions_file_exits_2(tmp_path: Path) -> None:
    project(tmp_path, {"deploy-check.yaml": "suppressions:\n  - id: DEP002\n    expires: 2030-01-01\n"})
    out = deploy("check", str(tmp_path))
    assert out.returncode == 2
    assert "deploy-check.yaml:2: suppressions[0].reason: every suppression needs a reason" in out.stderr


def test_suppressions_file_is_read_from_the_project(tmp_path: Path) -> None:
    project(
        tmp_path,
        {
            "deploy.yaml": CONFIG,
            "requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n",
            "deploy-check.yaml": "suppressions:\n  - id: DEP002\n    reason: bot pins weekly\n    "
            "expires: 2999-01-01\n",
        },
    )
    out = deploy("check", str(tmp_path), "--ignore", "RND", "-v")
    assert out.returncode == 0, out.stdout
    assert "DEP002 requirements.txt:1: bot pins weekly (deploy-check.yaml:2, until 2999-01-01)" in out.stdout


def test_list_and_explain() -> None:
    listing = deploy("check", "--list")
    assert listing.returncode == 0
    assert "SEC001   security      critical  source           Debug mode is on" in listing.stdout
    as_json = json.loads(deploy("check", "--list", "--format", "json").stdout)
    assert {"SEC001", "XL001", "RND004"} <= {c["id"] for c in as_json}
    page = deploy("explain", "sec001")
    assert page.returncode == 0
    assert page.stdout.startswith("# SEC001: Debug mode is on")
    unknown = deploy("explain", "SEC0001")
    assert unknown.returncode == 2
    assert "did you mean SEC001?" in unknown.stderr


def test_output_file_and_select(tmp_path: Path) -> None:
    project(tmp_path, {"app.py": CLEAN_APP.replace("SESSION_COOKIE_SECURE=True,", "DEBUG=True,")})
    report = tmp_path / "out.sarif"
    out = deploy("check", str(tmp_path), "--select", "SEC001,SEC010", "--format", "sarif", "-o", str(report))
    assert out.returncode == 1
    assert out.stdout == ""
    doc = json.loads(report.read_text())
    assert sorted({r["ruleId"] for r in doc["runs"][0]["results"]}) == ["SEC001", "SEC010"]


LOCAL_CHECK = """\
from deploy.checker import Finding, check


@check("ACME001", area="deployment", severity="high", title="No CHANGELOG",
       why="Releases need notes.", fix="Write CHANGELOG.md.", layers=("project",))
def changelog(ctx):
    if "CHANGELOG.md" not in ctx.project.files:
        yield Finding("no CHANGELOG.md")
"""


def test_local_checks_folder(tmp_path: Path) -> None:
    project(tmp_path, {"deploy_checks/changelog.py": LOCAL_CHECK})
    out = deploy("check", str(tmp_path), "--select", "ACME")
    assert out.returncode == 1
    assert "high     ACME001 (project): no CHANGELOG.md" in out.stdout
    # Without plugins the local check does not exist: selecting it is a usage error.
    alone = deploy("check", str(tmp_path), "--select", "ACME", "--no-plugins")
    assert alone.returncode == 2 and "unknown check id ACME" in alone.stderr


def test_entry_point_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "acme_checks-1.0.dist-info").mkdir(parents=True)
    (site / "acme_checks.py").write_text(LOCAL_CHECK)
    (site / "acme_checks-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-checks\nVersion: 1.0\n"
    )
    (site / "acme_checks-1.0.dist-info" / "entry_points.txt").write_text(
        "[deploy.checks]\nacme = acme_checks\n"
    )
    app = project(tmp_path / "app")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    out = deploy("check", str(app), "--select", "ACME", env=env)
    assert out.returncode == 1, out.stderr
    assert "ACME001" in out.stdout
    listing = deploy("check", "--list", "--format", "json", env=env)
    assert {"id": "ACME001", "origin": "plugin acme"}.items() <= next(
        c for c in json.loads(listing.stdout) if c["id"] == "ACME001"
    ).items()


def test_broken_plugin_is_a_usage_error(tmp_path: Path) -> None:
    project(tmp_path, {"deploy_checks/broken.py": "import not_a_module_anywhere\n"})
    out = deploy("check", str(tmp_path))
    assert out.returncode == 2
    assert "broken.py: cannot be loaded: ModuleNotFoundError" in out.stderr
    no_traceback(out)


def test_machine_formats_name_files_from_the_directory_ci_runs_in(tmp_path: Path) -> None:
    app = tmp_path / "services" / "web"
    project(app, {"app.py": CLEAN_APP.replace("SESSION_COOKIE_SECURE=True,", "DEBUG=True,")})
    annotations = deploy("check", "services/web", "--select", "SEC001", "--format", "github", cwd=tmp_path)
    assert annotations.stdout.startswith("::error file=services/web/app.py,line=")
    sarif = json.loads(
        deploy("check", "services/web", "--select", "SEC001", "--format", "sarif", cwd=tmp_path).stdout
    )
    run = sarif["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    assert (
        run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "services/web/app.py"
    )


def test_a_check_that_crashes_is_reported_not_hidden(tmp_path: Path) -> None:
    crashing = (
        "from deploy.checker import check\n\n"
        '@check("ACME002", area="pitfalls", severity="low", title="t", why="w", fix="f", references=("x",))\n'
        "def boom(ctx):\n    raise RuntimeError('oops')\n"
    )
    project(tmp_path, {"deploy_checks/boom.py": crashing})
    out = deploy("check", str(tmp_path), "--select", "ACME")
    assert out.returncode == 1
    assert "ACME002" in out.stdout and "the check itself failed (RuntimeError: oops)" in out.stdout
    no_traceback(out)


def test_unknown_check_ids_are_usage_errors_with_a_suggestion(tmp_path: Path) -> None:
    project(tmp_path)
    out = deploy("check", str(tmp_path), "--select", "NOPE")
    assert out.returncode == 2
    assert "--select: unknown check id NOPE; see 'deploy check --list'" in out.stderr
    out = deploy("check", str(tmp_path), "--ignore", "SEC001,PERF0004")
    assert out.returncode == 2
    assert "--ignore: unknown check id PERF0004; did you mean PERF004" in out.stderr
    assert "Traceback" not in out.stderr
    # Prefixes and area names are not unknown.
    assert (
        deploy("check", str(tmp_path), "--select", "SEC,performance", "--fail-on", "critical").returncode == 0
    )


def test_app_and_python_need_import(tmp_path: Path) -> None:
    project(tmp_path)
    out = deploy("check", str(tmp_path), "--app", "app:create_app()")
    assert out.returncode == 2 and "--app is only used with --import" in out.stderr
    out = deploy("check", str(tmp_path), "--import", "--python", str(tmp_path / "nope" / "python"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_one_check_ran_is_singular(tmp_path: Path) -> None:
    project(tmp_path)
    assert "; 1 check ran, 0 skipped" in deploy("check", str(tmp_path), "--select", "SEC001").stdout
    assert "; 2 checks ran, 0 skipped" in deploy("check", str(tmp_path), "--select", "SEC001,SEC002").stdout
