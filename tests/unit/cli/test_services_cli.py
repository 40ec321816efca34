"""deploy services credentials without hosts: its help, and a deploy.yaml without services (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import main

pytestmark = pytest.mark.unit


def test_credentials_without_services_postgres_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "app: {name: flaskr, wsgi: 'flaskr:app'}\nserver: {domains: [a.example.com], hosts: [10.0.0.1]}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["services", "credentials", "-c", str(tmp_path / "deploy.yaml")])
    assert result.exit_code == 2
    assert "deploy.yaml: services.postgres: not in deploy.yaml" in result.output


def test_credentials_help_warns_that_it_shows_the_password() -> None:
    result = CliRunner().invoke(main, ["services", "credentials", "--help"])
    assert result.exit_code == 0
    assert "password included" in result.output and "--service [postgres|redis]" in result.output


def test_a_deploy_yaml_without_hosts_names_the_line_of_server_hosts(tmp_path: Path) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "app: {name: flaskr, wsgi: 'flaskr:app'}\nserver:\n  domains: [a.example.com]\n  hosts: []\n"
    )
    result = CliRunner().invoke(main, ["services", "backups", "-c", str(config)])
    assert result.exit_code == 2
    assert (
        result.output == f"error: {config}:4: server.hosts: expected at least one host (or use -e sandbox)\n"
    )
