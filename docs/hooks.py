"""MkDocs hook: the reference pages are generated at build time, so they can never drift.

- `reference/configuration.md` from the pydantic model of deploy.yaml (`deploy.config.model`): every key,
  its type, its default and its `description=`;
- `reference/checks/` from the check registry (`deploy.checker.runner.load_checks`): an index, one page
  per area and one page per check (`Check.doc()`, the same text `deploy explain ID` prints).
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from deploy.checker.registry import AREAS, Check, load_checks
from deploy.config.model import Config

CONFIG_PAGE = "reference/configuration.md"
#: The site's front page is the README, its links made relative to docs/.
README = Path(__file__).resolve().parents[1] / "README.md"
CHECKS_DIR = "reference/checks"


# --- configuration reference ---------------------------------------------------------------------


def _type(annotation: Any) -> str:
    """A short, readable name of an annotation (Annotated and validators left out)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in get_args(annotation))
    if origin is Literal:
        return " or ".join(
            f"`{v!r}`".replace("'", "") if isinstance(v, str) else f"`{v}`".lower()
            for v in get_args(annotation)
        )
    if origin is list:
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type(key)} to {_type(value)}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Any:
        return "any"
    names = {str: "string", int: "integer", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", "?"))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(its keys' defaults)"
        return f"`{value!r}`" if value else "empty"
    value = field.default
    if value is None or value is PydanticUndefined:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _sections(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel]]]:
    """(dotted name, model) of this model and every section below it, depth first; the items of a
    list of sections are named with `[]` (`server.hosts[]`), the values of a mapping of sections
    with `.NAME` (`jobs.NAME`)."""
    found = [(prefix, model)]
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        named = get_origin(field.annotation) is dict
        for arg, in_list in _models(field.annotation):
            found += _sections(arg, f"{key}[]" if in_list else f"{key}.NAME" if named else key)
    return found


def _models(annotation: Any, in_list: bool = False) -> list[tuple[type[BaseModel], bool]]:
    """The sections an annotation holds, and whether each is the item type of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, in_list)]
    inner = in_list or get_origin(annotation) is list
    return [m for arg in get_args(annotation) for m in _models(arg, inner)]


def config_keys() -> list[str]:
    """Every key of deploy.yaml as a dotted name (`server.ssh.port`), in the model's order."""
    return [
        f"{prefix}.{name}" if prefix else name
        for prefix, model in _sections(Config, "")
        for name, field in model.model_fields.items()
        if not field.exclude
    ]


def config_page() -> str:
    out = [
        "# Configuration reference",
        "",
        "Every key of deploy.yaml: its type, its default and what it means. This page is generated from",
        "the model (`deploy/config.py`) when the site is built; `deploy schema` prints the same model as",
        "a JSON Schema for editors, and `playbooks/full.yaml` shows every key with a comment.",
        "",
    ]
    for prefix, model in _sections(Config, ""):
        title = prefix or "top level"
        out += [f"## {title}", "", " ".join((model.__doc__ or "").split()), ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = f"{prefix}.{name}" if prefix else name
            meaning = (field.description or "").replace("|", "\\|")
            kind = _type(field.annotation).replace("|", "\\|")
            out.append(f"| `{key}` | {kind} | {_default(field)} | {meaning} |")
        out.append("")
    return "\n".join(out)


# --- check reference -------------------------------------------------------------------------------


def _row(c: Check, link: str) -> str:
    looks = ", ".join(layer.value for layer in c.layers)
    title = c.title.replace("|", "\\|")
    return f"| [{c.id}]({link}) | {c.severity.label} | {looks} | {title} |"


def checks_index(checks: list[Check]) -> str:
    out = [
        "# Check reference",
        "",
        f"The {len(checks)} built-in checks of `deploy check`, one page each, generated from each check's",
        "metadata when the site is built (the same page `deploy explain ID` prints).",
        "",
    ]
    for area in AREAS:
        mine = [c for c in checks if c.area == area]
        out += [
            f"## [{area.capitalize()}]({area}.md)",
            "",
            "| id | severity | looks at | title |",
            "| --- | --- | --- | --- |",
        ]
        out += [_row(c, f"{c.id}.md") for c in mine] + [""]
    return "\n".join(out)


def area_page(area: str, checks: list[Check]) -> str:
    mine = [c for c in checks if c.area == area]
    out = [
        f"# {area.capitalize()} checks",
        "",
        "| id | severity | looks at | title |",
        "| --- | --- | --- | --- |",
    ]
    out += [_row(c, f"{c.id}.md") for c in mine] + [""]
    return "\n".join(out)


def check_page(c: Check) -> str:
    # The page's own References are bare URLs (<https://...>), which Markdown links as they are.
    return c.doc()


# --- the hooks ---------------------------------------------------------------------------------------


def front_page() -> str:
    """The README with its links into docs/ made relative to the site, and links to other files of
    the repository shown as their paths (they are not pages of the site)."""
    text = README.read_text(encoding="utf-8").replace("](docs/", "](")

    def plain(m: re.Match[str]) -> str:
        label, target = m.group(1), m.group(2)
        return (
            f"{label} in the repository"
            if label == f"`{target}`"
            else f"{label} (`{target}` in the repository)"
        )

    return re.sub(r"\[([^\]]+)\]\((?!https?:|[a-z-]+\.md)([^)]+)\)", plain, text)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Add the check pages, by area, under "Check reference" in the navigation."""
    checks = load_checks(plugins=False)
    nav = config.nav or []
    for entry in nav:
        if isinstance(entry, dict) and "Reference" in entry:
            section = entry["Reference"]
            section.append(
                {
                    "Checks": [f"{CHECKS_DIR}/index.md"]
                    + [
                        {
                            area.capitalize(): [f"{CHECKS_DIR}/{area}.md"]
                            + [f"{CHECKS_DIR}/{c.id}.md" for c in checks if c.area == area]
                        }
                        for area in AREAS
                    ]
                }
            )
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    checks = load_checks(plugins=False)
    pages = {
        "index.md": front_page(),
        CONFIG_PAGE: config_page(),
        f"{CHECKS_DIR}/index.md": checks_index(checks),
    }
    pages.update({f"{CHECKS_DIR}/{area}.md": area_page(area, checks) for area in AREAS})
    pages.update({f"{CHECKS_DIR}/{c.id}.md": check_page(c) for c in checks})
    for path, text in pages.items():
        files.append(File.generated(config, path, content=text))
    return files
