"""The docs site builds strictly (a broken link or anchor fails), the README stays a front page, and
the generated references cover every check and every key of deploy.yaml."""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from deploy.checker.registry import load_checks

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

#: The README's two commands, byte for byte (CI and the quickstart run exactly these).
TWO_COMMANDS = (
    "bash playbooks/quickstart.sh            # 1. install deploy and run its main job on the example app\n"
    "bash .ci/setup && python3 -m pytest     "
    "# 2. install what the tests need, then run the whole test suite\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_readme_is_a_front_page() -> None:
    assert README.stat().st_size < 15 * 1024


def test_readme_has_the_two_commands() -> None:
    assert "```sh\n" + TWO_COMMANDS + "```\n" in README.read_text(encoding="utf-8")


def test_readme_links_to_existing_files() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?:)([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    assert [t for t in targets if not (REPO / t).exists()] == []


def test_every_check_has_a_page(site: Path) -> None:
    for c in load_checks(plugins=False):
        page = site / "reference" / "checks" / c.id / "index.html"
        assert page.is_file(), c.id
        text = _text(page)
        assert f"{c.id}: {c.title}" in text and "Why it matters" in text and "How to fix it" in text, c.id
        assert all(ref in text for ref in c.references), c.id


def _hooks() -> ModuleType:
    """docs/hooks.py, the module that generates the reference pages."""
    spec = importlib.util.spec_from_file_location("deploy_docs_hooks", REPO / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_key_is_in_the_reference(site: Path) -> None:
    keys = _hooks().config_keys()
    assert {"app.name", "server.ssh.port", "nginx.csp_sources", "push.lock_wait"} <= set(keys)
    # A row of the reference's tables per key (not a mention in another key's description).
    page = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert [k for k in keys if f"<td><code>{k}</code></td>" not in page] == []


def test_every_config_key_has_a_description() -> None:
    from deploy.config.model import Config

    sections = _hooks()._sections(Config, "")
    assert [
        f"{prefix}.{name}"
        for prefix, model in sections
        for name, field in model.model_fields.items()
        if not field.description
    ] == []
