"""Checks that run real linters on rendered and project files: systemd-analyze, hadolint, gixy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.render.render import render
from tests.unit.checks.support import CONFIG, check, found, project
from tests.unit.render.test_process_units import PROCESSES

pytestmark = pytest.mark.tools


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (the CI installs it; see .ci/run)")


BARE_UNIT = """\
[Unit]
Description={{ app.name }}

[Service]
User=root
Environment=SECRET_KEY=hunter2hunter2
ExecStart=/usr/bin/gunicorn app:app

[Install]
WantedBy=multi-user.target
"""


def test_rnd004_passes_on_the_shipped_hardened_unit(tmp_path: Path) -> None:
    needs("systemd-analyze")
    report = check(project(tmp_path), ["RND004"], config=CONFIG)
    assert report.skipped == []
    assert found(report) == {}


def test_rnd004_fires_on_an_unhardened_unit_with_a_secret_in_environment(tmp_path: Path) -> None:
    needs("systemd-analyze")
    root = project(tmp_path, {"templates/app.service.j2": BARE_UNIT})
    result = found(check(root, ["RND004"], config=CONFIG))
    messages = " ".join(result["RND004"])
    assert "a secret is passed with Environment=" in messages
    assert "exposure 9." in messages and "UNSAFE" in messages


def test_dep007_runs_hadolint_on_the_project_dockerfile(tmp_path: Path) -> None:
    needs("hadolint")
    root = project(tmp_path, {"Dockerfile": "FROM python\nRUN pip install flask\nCMD python app.py\n"})
    result = found(check(root, ["DEP007", "RND005"], config=CONFIG))
    codes = {m.split(" ", 1)[1].split(":", 1)[0] for m in result["DEP007"]}
    assert {"DL3006", "DL3013", "DL3025"} <= codes
    assert any(m.startswith("Dockerfile:3 DL3025") for m in result["DEP007"])
    # The project's own Dockerfile is not "rendered": RND005 lints only what deploy renders.
    assert "RND005" not in result


def test_dep007_passes_on_a_clean_dockerfile_and_rnd005_on_the_rendered_one(tmp_path: Path) -> None:
    needs("hadolint")
    assert found(check(project(tmp_path), ["DEP007"])) == {}
    bare = tmp_path / "bare"
    project(bare, {"Dockerfile": None})
    report = check(bare, ["RND005"], config=CONFIG)
    assert report.skipped == [] and found(report) == {}


def test_rnd005_lints_a_dockerfile_template_override(tmp_path: Path) -> None:
    needs("hadolint")
    root = project(
        tmp_path, {"Dockerfile": None, "templates/Dockerfile.j2": "FROM python\nCMD python app.py\n"}
    )
    result = found(check(root, ["RND005"], config=CONFIG))
    assert any(m.startswith("Dockerfile:2 DL3025") for m in result["RND005"]), result


def test_dep007_is_skipped_without_a_dockerfile(tmp_path: Path) -> None:
    report = check(project(tmp_path, {"Dockerfile": None}), ["DEP007"])
    assert [(c.id, reason) for c, reason in report.skipped] == [("DEP007", "no Dockerfile in the project")]


REDEFINING_SITE = """\
server {
    listen 80;
    server_name {{ server.domains[0] }};
    server_tokens off;
    add_header X-Frame-Options "DENY" always;
    add_header X-Content-Type-Options "nosniff" always;
    location /static {
        alias /srv/static/;
        add_header Cache-Control "public";
    }
    location / {
        proxy_pass http://127.0.0.1:8000;
    }
}
"""


def test_rnd006_runs_gixy_on_the_rendered_site(tmp_path: Path) -> None:
    needs("gixy")
    root = project(tmp_path, {"templates/nginx-site.conf.j2": REDEFINING_SITE})
    result = found(check(root, ["RND006"], config=CONFIG))
    plugins = {m.split(" ", 1)[1].split(":", 1)[0] for m in result["RND006"]}
    assert {"add_header_redefinition", "alias_traversal"} <= plugins


#: The shipped site with WebSocket upgrades passed (an ASGI worker): the map and the Upgrade headers.
WEBSOCKET_CONFIG = CONFIG + "gunicorn: {worker_class: asgi}\n"


@pytest.mark.parametrize("config", [CONFIG, WEBSOCKET_CONFIG], ids=["wsgi", "websockets"])
def test_rnd006_passes_on_the_shipped_site(tmp_path: Path, config: str) -> None:
    needs("gixy")
    report = check(project(tmp_path), ["RND006"], config=config)
    assert report.skipped == []
    assert found(report) == {}


def test_a_missing_linter_skips_its_check_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ids = ["RND004", "RND005", "RND006", "RND007", "RND008", "DEP007"]
    report = check(project(tmp_path / "app"), ids, config=CONFIG)
    assert {c.id: reason for c, reason in report.skipped} == {
        "RND007": "nginx is not installed here: the rendered Nginx files are tested on the hosts only",
        "RND008": "systemd-analyze is not installed",
        "DEP007": "hadolint is not installed",
        "RND004": "systemd-analyze is not installed",
        "RND005": "hadolint is not installed",
        "RND006": "gixy is not installed",
    }


# --- nginx -t and systemd-analyze verify on the rendered files (before a host sees them) -----------


def _override(name: str, old: str, new: str) -> str:
    """A shipped template with one piece of text replaced: a project's override of it."""
    text = (Path(__file__).resolve().parents[3] / "templates" / name).read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("config", [CONFIG, WEBSOCKET_CONFIG], ids=["wsgi", "websockets"])
def test_rnd007_and_rnd008_pass_on_the_shipped_files(tmp_path: Path, config: str) -> None:
    needs("nginx")
    needs("systemd-analyze")
    rendered = render(load_text(config, "deploy.yaml"))
    assert ("map $http_upgrade" in rendered["nginx/demo.conf"]) is (config == WEBSOCKET_CONFIG)
    report = check(project(tmp_path), ["RND007", "RND008", "RND009"], config=config)
    assert report.skipped == []
    assert found(report) == {}


def test_rnd004_and_rnd008_pass_on_the_shipped_process_units(tmp_path: Path) -> None:
    """systemd-analyze verify accepts each process's unit, and its hardening scores like the web one."""
    needs("systemd-analyze")
    config = CONFIG + PROCESSES
    rendered = render(load_text(config, "deploy.yaml"), None, project(tmp_path))
    assert {"systemd/demo-worker@.service", "systemd/demo-beat@.service"} <= set(rendered)
    report = check(project(tmp_path), ["RND004", "RND008"], config=config)
    assert report.skipped == []
    assert found(report) == {}


def test_rnd008_names_a_process_unit_line_systemd_analyze_verify_rejects(tmp_path: Path) -> None:
    needs("systemd-analyze")
    broken = _override("process.service.j2", "KillMode=mixed\n", "KillMode=gently\n")
    root = project(tmp_path, {"templates/process.service.j2": broken})
    messages = found(check(root, ["RND008"], config=CONFIG + PROCESSES))["RND008"]
    assert any(m.startswith("systemd/demo-worker@.service:") and "gently" in m for m in messages), messages
    assert any(m.startswith("systemd/demo-beat@.service:") and "gently" in m for m in messages), messages


def test_rnd007_names_the_file_and_line_nginx_t_rejects(tmp_path: Path) -> None:
    needs("nginx")
    broken = _override(
        "nginx-site.conf.j2", "    server_tokens off;", "    server_tokens off;\n    gzip maybe;"
    )
    root = project(tmp_path, {"templates/nginx-site.conf.j2": broken})
    rendered = render(load_text(CONFIG, "deploy.yaml"), None, root)["nginx/demo.conf"]
    line = next(n for n, text in enumerate(rendered.splitlines(), 1) if "gzip maybe" in text)
    (message,) = found(check(root, ["RND007"], config=CONFIG))["RND007"]
    assert message.startswith(f"nginx/demo.conf:{line} nginx -t: "), message
    assert 'invalid value "maybe"' in message


def test_rnd007_tests_the_snippets_and_catch_alls_too(tmp_path: Path) -> None:
    needs("nginx")
    broken = _override("nginx-proxy.conf.j2", "proxy_http_version", "proxy_http_versoin")
    root = project(tmp_path, {"templates/nginx-proxy.conf.j2": broken})
    (message,) = found(check(root, ["RND007"], config=CONFIG))["RND007"]
    assert message.startswith("nginx/snippets/demo-proxy.conf:"), message
    assert 'unknown directive "proxy_http_versoin"' in message


def test_rnd008_names_the_unit_line_systemd_analyze_verify_rejects(tmp_path: Path) -> None:
    needs("systemd-analyze")
    broken = _override("app.service.j2", "[Service]\n", "[Service]\nRestartSec=soon\nNoSuchKey=1\n")
    root = project(tmp_path, {"templates/app.service.j2": broken})
    messages = found(check(root, ["RND008"], config=CONFIG))["RND008"]
    assert any(m.startswith("systemd/demo@.service:") and "soon" in m for m in messages), messages
    assert any("NoSuchKey" in m for m in messages), messages


def test_rnd008_flags_a_command_that_is_not_there(tmp_path: Path) -> None:
    needs("systemd-analyze")
    unit = BARE_UNIT.replace("/usr/bin/gunicorn", "/opt/nowhere/gunicorn")
    root = project(tmp_path, {"templates/app.service.j2": unit})
    messages = found(check(root, ["RND008"], config=CONFIG))["RND008"]
    assert any("/opt/nowhere/gunicorn" in m for m in messages), messages


def test_rnd009_a_template_that_does_not_render_is_a_finding(tmp_path: Path) -> None:
    root = project(tmp_path, {"templates/nginx-site.conf.j2": "server {\n    {{ app.nmae }}\n}\n"})
    (message,) = found(check(root, ["RND009"], config=CONFIG))["RND009"]
    assert message.startswith("templates/nginx-site.conf.j2:2 "), message
    assert "nmae" in message


JOBS = CONFIG + "jobs:\n  cleanup: {command: flask purge, schedule: hourly, catch_up: true}\n"


def test_rnd008_verifies_the_job_units_and_names_a_timer_line_it_rejects(tmp_path: Path) -> None:
    needs("systemd-analyze")
    report = check(project(tmp_path), ["RND008"], config=JOBS)
    assert report.skipped == [] and found(report) == {}
    broken = _override("job.timer.j2", "AccuracySec=1s", "AccuracySec=soon")
    root = project(tmp_path / "broken", {"templates/job.timer.j2": broken})
    messages = found(check(root, ["RND008"], config=JOBS))["RND008"]
    assert any(m.startswith("systemd/demo-job-cleanup.timer:") and "soon" in m for m in messages), messages
