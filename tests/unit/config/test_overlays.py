"""Environments supplied from outside deploy.yaml (config/overlays.py): the loader applies the one a
caller passes, deploy.yaml's own environment of that name wins, and one that is not there is refused
as an unknown environment with its hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.config.loader import ConfigError, load, load_text
from deploy.config.overlays import ENVIRONMENT_OVERLAYS, Overlay
from deploy.config.sandbox_overlay import SANDBOX_ENV_NAME

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "app": {"name": "shop", "wsgi": "shop:create_app()"},
    "server": {"domains": ["shop.example.com"], "hosts": ["web1.example.com"]},
}


def _rehearsal(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "server": {**data["server"], "hosts": ["10.9.0.2"]}}


REHEARSAL = {"rehearsal": Overlay(_rehearsal, "start the rehearsal first")}


def test_a_supplied_overlay_is_applied_to_its_environment_only() -> None:
    text = yaml.safe_dump(BASE)
    config = load_text(text, "deploy.yaml", "rehearsal", overlays=REHEARSAL)
    assert [h.address for h in config.server.hosts] == ["10.9.0.2"]
    assert config.environment == "rehearsal"
    assert [h.address for h in load_text(text, overlays=REHEARSAL).server.hosts] == ["web1.example.com"]


def test_load_passes_the_overlays_on(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(BASE))
    config = load(tmp_path / "deploy.yaml", "rehearsal", project_files=False, overlays=REHEARSAL)
    assert [h.address for h in config.server.hosts] == ["10.9.0.2"]


def test_deploy_yamls_own_environment_wins_over_a_supplied_one() -> None:
    data = {**BASE, "environments": {"rehearsal": {"server": {"hosts": ["10.7.0.1"]}}}}
    config = load_text(yaml.safe_dump(data), "deploy.yaml", "rehearsal", overlays=REHEARSAL)
    assert [h.address for h in config.server.hosts] == ["10.7.0.1"]


def test_a_supplied_overlay_that_is_not_there_is_an_unknown_environment_with_its_hint() -> None:
    absent = {"rehearsal": Overlay(lambda data: None, "start the rehearsal first")}
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(BASE), "deploy.yaml", "rehearsal", overlays=absent)
    assert [str(p) for p in info.value.problems] == [
        "deploy.yaml: environments: no environment 'rehearsal' in environments:; start the rehearsal first"
    ]


def test_without_overlays_the_environment_is_unknown_and_has_no_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(BASE), "deploy.yaml", "rehearsal", overlays={})
    assert [p.message for p in info.value.problems] == ["no environment 'rehearsal' in environments:"]


def test_the_registry_supplies_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(ENVIRONMENT_OVERLAYS) == {SANDBOX_ENV_NAME}
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(BASE), "deploy.yaml", SANDBOX_ENV_NAME)
    assert info.value.problems[0].message.endswith("; run 'deploy sandbox up' first")
    (tmp_path / "environment.yaml").write_text(yaml.safe_dump({"server": {"hosts": ["10.82.0.2"]}}))
    config = load_text(yaml.safe_dump(BASE), "deploy.yaml", SANDBOX_ENV_NAME)
    assert [h.address for h in config.server.hosts] == ["10.82.0.2"]
