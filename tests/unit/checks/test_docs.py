"""Every check's page is generated from its metadata; its hand-written examples do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.checker.registry import AREAS, EXAMPLES_SUFFIX, load_checks

pytestmark = pytest.mark.unit

CHECKS_DIR = Path(__file__).resolve().parents[3] / "checks"


@pytest.mark.parametrize("c", load_checks(plugins=False), ids=lambda c: c.id)
def test_page_is_made_from_the_metadata(c) -> None:  # type: ignore[no-untyped-def]
    page = c.doc()
    assert page.startswith(f"# {c.id}: {c.title}\n")
    assert f"| {c.area} | {c.severity.label} |" in page
    assert c.why in page and c.fix in page and c.details in page
    for ref in c.references:
        assert f"- <{ref}>" in page
    for layer in c.layers:
        assert f"- {layer.value}: " in page
    assert f"ignore[{c.id}]" in page
    examples = c.examples()
    assert (examples is not None) == ("## Example\n" in page)
    if examples is not None:
        assert examples.strip() in page


def test_ids_are_stable_and_well_formed() -> None:
    checks = load_checks(plugins=False)
    assert all(re.fullmatch(r"(SEC|PERF|OBS|DEP|PIT|XL|RND|LIVE)\d{3}", c.id) for c in checks)
    assert {c.area for c in checks} <= set(AREAS)
    assert all(c.references for c in checks)


def test_no_orphan_examples_and_no_hand_written_pages() -> None:
    """checks/ holds examples only (`ID.examples.md`), each of a check that exists; the page of a
    check is never written by hand (it would drift from the metadata)."""
    ids = {c.id for c in load_checks(plugins=False)}
    names = [p.name for p in CHECKS_DIR.glob("*.md")]
    assert all(n.endswith(EXAMPLES_SUFFIX) for n in names), names
    assert {n.removesuffix(EXAMPLES_SUFFIX) for n in names} <= ids


def test_the_texts_are_written_once() -> None:
    """A check's why and fix are in its decorator only, not repeated in its examples file."""
    for c in load_checks(plugins=False):
        examples = c.examples() or ""
        assert c.why not in examples and c.fix not in examples, c.id


_BLOCK = re.compile(r'```\w+ title="([^"]+)"\n(.*?)```\n', re.S)
_STATIC = {"source", "project", "config"}


def examples(page: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """The files of the page's failing and passing example, or None if it has none."""
    if "## Example\n" not in page:
        return None
    section = page.split("## Example\n", 1)[1].split("\n## ", 1)[0]
    fails, passes = section.split("This passes:", 1)
    return dict(_BLOCK.findall(fails)), dict(_BLOCK.findall(passes))


def _fires(root: Path, check_id: str, files: dict[str, str]) -> bool:
    from deploy.checker.context import Context
    from deploy.checker.registry import select
    from deploy.checker.runner import run
    from deploy.config.loader import load

    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    # As `deploy check` loads it: what the project's files hold is for the checks to report.
    config = load(root / "deploy.yaml", project_files=False) if (root / "deploy.yaml").exists() else None
    report = run(select(load_checks(plugins=False), [check_id]), Context(root=root, config=config))
    assert report.skipped == [], report.skipped
    return any(r.check.id == check_id for r in report.active)


@pytest.mark.parametrize(
    "c",
    [c for c in load_checks(plugins=False) if {x.value for x in c.layers} <= _STATIC and c.id != "DEP007"],
    ids=lambda c: c.id,
)
def test_the_examples_on_the_page_do_what_it_says(c, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    found = examples(c.doc())
    assert found is not None, f"{c.id} has no example (checks/{c.id}{EXAMPLES_SUFFIX})"
    fails, passes = found
    assert fails and passes
    assert _fires(tmp_path / "fails", c.id, fails), "the failing example does not fire"
    assert not _fires(tmp_path / "passes", c.id, passes), "the passing example fires"


def test_the_listing_names_where_the_page_is() -> None:
    """`deploy check --list --format json` gives each check's page as the command that prints it
    (a file path would point to nothing: the page is generated)."""
    from deploy.checker.registry import describe

    for c in load_checks(plugins=False):
        assert describe(c)["doc"] == f"deploy explain {c.id}"
