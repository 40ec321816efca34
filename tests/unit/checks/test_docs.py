"""Every check has its documentation page beside it, in step with its metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.checker.registry import AREAS, load_checks

pytestmark = pytest.mark.unit

CHECKS_DIR = Path(__file__).resolve().parents[3] / "checks"


@pytest.mark.parametrize("c", load_checks(plugins=False), ids=lambda c: c.id)
def test_page_exists_and_matches_metadata(c) -> None:  # type: ignore[no-untyped-def]
    page = (CHECKS_DIR / f"{c.id}.md").read_text(encoding="utf-8")
    assert page.startswith(f"# {c.id}: {c.title}\n")
    assert f"| {c.area} | {c.severity.label} |" in page
    assert c.why in page and c.fix in page
    for ref in c.references:
        assert ref in page
    assert c.doc() == page


def test_ids_are_stable_and_well_formed() -> None:
    checks = load_checks(plugins=False)
    assert all(re.fullmatch(r"(SEC|PERF|OBS|DEP|PIT|XL|RND|LIVE)\d{3}", c.id) for c in checks)
    assert {c.area for c in checks} <= set(AREAS)
    assert all(c.references for c in checks)


def test_no_orphan_pages() -> None:
    ids = {c.id for c in load_checks(plugins=False)}
    assert {p.stem for p in CHECKS_DIR.glob("*.md")} == ids


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
    found = examples((CHECKS_DIR / f"{c.id}.md").read_text(encoding="utf-8"))
    assert found is not None, f"{c.id}.md has no example"
    fails, passes = found
    assert fails and passes
    assert _fires(tmp_path / "fails", c.id, fails), "the failing example does not fire"
    assert not _fires(tmp_path / "passes", c.id, passes), "the passing example fires"
