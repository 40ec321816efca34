"""Every check has its documentation page beside it, in step with its metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.checkrun import AREAS, load_checks

pytestmark = pytest.mark.unit

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"


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
