"""DEP008 and the push: an old pinned package with a companion that is not bounded below its break."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from deploy.project.pins import BREAKAGES, below, declared, from_requirements, from_versions
from deploy.push.wheels import pins_problem
from tests.unit.checks.support import check, found, project

pytestmark = pytest.mark.unit


def advice(*lines: str) -> list[str]:
    """The lines to add that the requirement lines (of requirements.txt) get advised."""
    reqs = declared([(f"requirements.txt:{n}", line) for n, line in enumerate(lines, start=1)])
    return [p.breakage.advice for p in from_requirements(reqs)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # the old package pinned, the companion unpinned, ranged from below, or pinned to a breaking release
        (["Flask==2.2.3"], ["Werkzeug<3"]),
        (["Flask==2.2.3", "Werkzeug>=2.2"], ["Werkzeug<3"]),
        (["Flask==2.2.3", "Werkzeug==3.0.0"], ["Werkzeug<3"]),
        (["Flask==2.2.3", "Werkzeug<=3.0"], ["Werkzeug<3"]),
        # bounded companions pass
        (["Flask==2.2.3", "Werkzeug<3"], []),
        (["Flask==2.2.3", "Werkzeug==2.3.8"], []),
        (["Flask==2.2.3", "Werkzeug~=2.3.0"], []),
        (["Flask==2.2.3", "Werkzeug>=2.2,<3"], []),
        # the old package not held old: unpinned, open above, or a range whose newest release works
        (["Flask", "Flask-Login"], []),
        (["Flask>=2.0"], []),
        (["Flask>=2,<3"], []),
        (["Flask==2.2.*"], []),
        (["Flask==2.2.4"], []),
        (["Flask-Login==0.6.3"], []),
        # held old by a range
        (["Flask<2.2"], ["Werkzeug<3"]),
        (["Flask~=2.1.0"], ["Werkzeug<3"]),
        (["Flask-Login<=0.6.2", "Werkzeug<3"], []),
        # one line per companion, the lowest bound (Werkzeug<2.1 covers Werkzeug<3)
        (["Flask==1.1.2"], ["Jinja2<3.1", "Werkzeug<2.1", "itsdangerous<2.1"]),
        (["Flask==1.1.2", "Werkzeug<3"], ["Jinja2<3.1", "Werkzeug<2.1", "itsdangerous<2.1"]),
        (["Flask==1.1.2", "Jinja2<3.1", "Werkzeug<2.1", "itsdangerous<2.1"], []),
        (["flask_sqlalchemy==2.5.1"], ["Flask<3", "SQLAlchemy<2"]),
        (["flask_sqlalchemy==2.5.1", "flask==2.2.5"], ["SQLAlchemy<2"]),
        (["Flask-WTF==1.1.1 --hash=sha256:00", "Jinja2==2.11.3"], ["MarkupSafe<2.1", "Werkzeug<3"]),
    ],
)
def test_what_the_requirement_lines_are_advised(lines: list[str], expected: list[str]) -> None:
    assert sorted(advice(*lines), key=str.lower) == sorted(expected, key=str.lower)


def test_the_message_names_the_error_the_companion_and_the_file() -> None:
    problems = from_requirements(declared([("req/base.txt:4", "Flask-Login==0.6.2"), ("x:1", "Werkzeug>=2")]))
    assert [p.message() for p in problems] == [
        "Flask-Login==0.6.2 cannot be imported with Werkzeug>=3 (ImportError: cannot import name "
        "'url_decode' from 'werkzeug.urls'), and Werkzeug>=2 (x:1) allows it: "
        "add `Werkzeug<3` to req/base.txt"
    ]
    assert problems[0].where == "req/base.txt:4"


@pytest.mark.parametrize(
    ("spec", "limit", "expected"),
    [
        ("==1.1.2", "2", True),
        ("<2", "2", True),
        ("<=2", "2", False),
        ("~=1.1", "2", True),
        (">=1", "2", False),
    ],
)
def test_below(spec: str, limit: str, expected: bool) -> None:
    from packaging.specifiers import SpecifierSet

    assert below(SpecifierSet(spec), limit) is expected


def test_resolved_versions() -> None:
    assert [
        p.breakage.advice for p in from_versions({"flask": Version("2.2.3"), "werkzeug": Version("3.1.9")})
    ] == ["Werkzeug<3"]
    assert from_versions({"flask": Version("2.2.4"), "werkzeug": Version("3.1.9")}) == []
    assert from_versions({"flask": Version("2.2.3"), "werkzeug": Version("2.3.8")}) == []
    # Flask 1.1.2 with Werkzeug 3: the lower bound (2.1) is the one advised
    old = from_versions({"flask": Version("1.1.2"), "werkzeug": Version("3.1.9")})
    assert [p.breakage.advice for p in old] == ["Werkzeug<2.1"]


def test_a_push_refuses_wheels_that_hold_a_breaking_pair() -> None:
    wheels = ["Flask-2.1.3-py3-none-any.whl", "werkzeug-3.1.9-py3-none-any.whl", "requirements-source"]
    assert pins_problem(wheels, "requirements.txt") == (
        "Flask 2.1.3 cannot be imported with Werkzeug>=3 (ImportError: cannot import name 'url_quote' from "
        "'werkzeug.urls'), and the wheels hold Werkzeug 3.1.9: add `Werkzeug<3` to requirements.txt"
    )
    assert pins_problem(["Flask-2.1.3-py3-none-any.whl", "Werkzeug-2.2.3-py3-none-any.whl"], "r.txt") is None


def test_every_entry_is_well_formed() -> None:
    for b in BREAKAGES:
        assert b.old.startswith("<") and Version(b.old[1:]) and Version(b.since), b
        assert b.error.split(":")[0] in ("ImportError", "AttributeError"), b


def test_the_check_points_at_the_pin_and_reads_includes_and_constraints(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "requirements.txt": "gunicorn==23.0.0\n-r requirements/base.txt\n-c constraints.txt\n",
            "requirements/base.txt": "# old\nFlask==2.2.3\nFlask-Login==0.6.2\n",
            "constraints.txt": "Werkzeug<2.4\n",
        },
    )
    assert found(check(root, ["DEP008"])) == {}
    (root / "constraints.txt").write_text("Werkzeug>=2\n")
    messages = found(check(root, ["DEP008"]))["DEP008"]
    assert [m.split(" cannot")[0] for m in messages] == [
        "requirements/base.txt:2 Flask==2.2.3",
        "requirements/base.txt:3 Flask-Login==0.6.2",
    ]
    assert all(m.endswith("add `Werkzeug<3` to requirements/base.txt") for m in messages)


def test_lines_never_installed_on_the_hosts_count_for_neither_side(tmp_path: Path) -> None:
    """dtale 3.22.0 (the corpus) pins `Flask<=1.1.4; python_version < '3.7'`: not on a 3.11 host."""
    requirements = (
        "Flask<=1.1.4; python_version < '3.7'\n"
        "Flask==2.2.3; python_version >= '3.8'\n"
        "Werkzeug<3; python_version < '3.8'\n"
    )
    root = project(tmp_path, {"requirements.txt": requirements})
    messages = found(check(root, ["DEP008"]))["DEP008"]
    assert len(messages) == 1 and messages[0].startswith("requirements.txt:2 Flask==2.2.3"), messages
    assert "nothing bounds Werkzeug: add `Werkzeug<3`" in messages[0]
