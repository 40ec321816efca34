"""deploy.yaml validation asserted in process, exactly (benchmarks/mutation.py: model, loader).

The mutation runs leave out the tests that start `python -m deploy` (seconds each); these say in
process what those say through a process: a bad deploy.yaml is one line per problem naming file,
line and key, exit code 2, never a traceback; and they pin the exact words and line numbers of the
loader's messages, which mutants of the loader and the model's helpers change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import main
from deploy.config.loader import ConfigError, load_text

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  secrets: [SECRET_KEY]
server:
  domains: [shop.example.com]
  hosts: [web1.example.com]
"""


def problems(text: str, environment: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "deploy.yaml", environment)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(here)


@pytest.mark.parametrize(
    ("line", "replace", "expected"),
    [
        (
            2,
            ("  name: shop\n", "  name: Shop!\n"),
            "error: deploy.yaml:2: app.name: expected a short lower-case name: letters, digits and hyphens,"
            " starting with a letter, got 'Shop!'\n",
        ),
        (
            7,
            ("[web1.example.com]", "[web1.example.com, web1.example.com]"),
            "error: deploy.yaml:7: server.hosts",
        ),
        (
            4,
            ("  secrets:", "  secrest:"),
            "error: deploy.yaml:4: app.secrest: unknown key 'secrest'; did you",
        ),
    ],
)
def test_the_cli_names_file_line_and_key_on_one_line_and_exits_2(
    project: Path, line: int, replace: tuple[str, str], expected: str
) -> None:
    (project / "deploy.yaml").write_text(BASE.replace(*replace), encoding="utf-8")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
