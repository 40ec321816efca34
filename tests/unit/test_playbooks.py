"""The example playbooks document every key of deploy.yaml, and every one of them is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_origin

import pytest
from pydantic import BaseModel

from deploy.config.loader import load, parse_yaml
from deploy.config.model import Config

pytestmark = pytest.mark.unit

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ALL = sorted(PLAYBOOKS.glob("*.yaml")) + sorted(PLAYBOOKS.glob("*/deploy.yaml"))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _key_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], tuple[str, str]]:
    """Every key path of the model, with the (model, field) it stands for."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        path = (*prefix, name)
        out[path] = (model.__name__, name)
        sub = _model_of(info.annotation)
        if sub is not None:
            out |= _key_paths(sub, path)
    return out


def test_there_are_playbooks() -> None:
    assert len(ALL) >= 4


@pytest.mark.parametrize("playbook", ALL, ids=lambda p: str(p.relative_to(PLAYBOOKS)))
def test_every_playbook_is_valid_in_every_environment(playbook: Path) -> None:
    config = load(playbook)
    for environment in config.environments:
        load(playbook, environment)


def _named_maps(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Key paths of mappings from a name to a section (`processes:`): the names are the user's."""
    out: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        sub = _model_of(info.annotation)
        if sub is None:
            continue
        if get_origin(info.annotation) is dict:
            out.add((*prefix, name))
        out |= _named_maps(sub, (*prefix, name))
    return out


def _without_names(path: tuple[str, ...], maps: set[tuple[str, ...]]) -> tuple[str, ...]:
    for i in range(len(path)):
        if path[:i] in maps:
            return (*path[:i], *_without_names(path[i + 1 :], set()))
    return path


def test_full_yaml_documents_every_key() -> None:
    text = (PLAYBOOKS / "full.yaml").read_text()
    doc = parse_yaml(text, "full.yaml")
    maps = _named_maps(Config)
    seen = {_without_names(tuple(p for p in path if isinstance(p, str)), maps) for path in doc.lines}
    # Keys shown only in comments (alternatives such as tls.cert) count as documented.
    commented = {
        line.strip().lstrip("# ").split(":")[0] for line in text.splitlines() if line.strip().startswith("#")
    }
    fields = _key_paths(Config)
    documented = {fields[path] for path in fields if path in seen or path[-1] in commented}
    # A model used in several places (such as a hook) is documented once, wherever that is.
    missing = sorted({".".join(path) for path, field in fields.items() if field not in documented})
    assert missing == [], f"keys not documented in playbooks/full.yaml: {missing}"
