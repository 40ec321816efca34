"""DEP008's table against real packages: an old Flask with today's Werkzeug, installed and imported.

Offline: the wheels come from deploy's wheel cache (~/.cache/deploy/wheels, filled by earlier pushes
and tests); where they are missing the test says which to fetch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

from deploy.project.pins import BREAKAGES
from deploy.push.artifact import default_cache
from deploy.push.wheels import pins_problem
from tests.conftest import unavailable

pytestmark = pytest.mark.tools

#: Flask 2.1.3 and what it imports; Werkzeug 3.1.9 breaks it, 2.2.3 does not.
NEEDED = (
    "flask-2.1.3",
    "werkzeug-3.1.9",
    "werkzeug-2.2.3",
    "jinja2-",
    "itsdangerous-",
    "click-",
    "markupsafe-",
)


def _wheels(into: Path) -> list[str]:
    """Copies of the cached wheels Flask 2.1.3 needs, in `into` (one per distribution and version)."""
    here = set(sys_tags())
    found: dict[str, Path] = {}
    for wheel in sorted(default_cache().glob("*/*.whl")):
        if not here & set(parse_wheel_filename(wheel.name)[3]):
            continue  # built for another Python or platform
        for prefix in NEEDED:
            if wheel.name.lower().startswith(prefix):
                found.setdefault(prefix, wheel)
    missing = [p for p in NEEDED if p not in found]
    if missing:
        unavailable(
            f"needs wheels in {default_cache()}: {', '.join(missing)} "
            "(pip download Flask==2.1.3 Werkzeug==2.2.3 Werkzeug==3.1.9)"
        )
    for wheel in found.values():
        (into / wheel.name).write_bytes(wheel.read_bytes())
    return sorted(w.name for w in found.values())


def _install(python: Path, folder: Path, *requirements: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(folder), *requirements],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _import_error(python: Path) -> str:
    done = subprocess.run([str(python), "-c", "import flask"], capture_output=True, text=True, timeout=60)
    return done.stderr.strip().splitlines()[-1] if done.returncode else ""


def test_old_flask_with_todays_werkzeug_fails_as_the_table_says(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    names = _wheels(folder)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    entry = next(b for b in BREAKAGES if b.package == "Flask" and b.since == "3")

    _install(python, folder, "Flask==2.1.3", "Werkzeug==3.1.9")
    assert _import_error(python).startswith(entry.error)
    broken = [n for n in names if not n.lower().startswith("werkzeug-2")]
    assert pins_problem(broken, "requirements.txt") is not None

    _install(python, folder, "Werkzeug==2.2.3")  # what `Werkzeug<3` resolves to from these wheels
    assert _import_error(python) == ""
    fixed = [n for n in names if not n.lower().startswith("werkzeug-3")]
    assert pins_problem(fixed, "requirements.txt") is None
