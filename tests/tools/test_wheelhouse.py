"""The wheelhouse with real pip and PyPI: a requirement published only as a source archive."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy.project.requirements import resolve
from deploy.push.artifact import ArtifactError, Platform, wheelhouse
from tests.conftest import in_ci, unavailable

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module", autouse=True)
def _pypi() -> None:
    """pip downloads real packages from PyPI. Under CI=true the test just runs (no network is a failure,
    shown by pip); locally PyPI is asked once, when a test of this module starts (never at import)."""
    if in_ci():
        return
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        unavailable(f"needs PyPI (pip downloads real packages): pypi.org:443 unreachable ({exc})")


DEBIAN_12 = Platform("3.11.2", "x86_64", "glibc", "2.36")


def _requirements(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.txt").write_text(text)
    return resolve(
        "requirements.txt", lambda p: (tmp_path / p).read_bytes() if (tmp_path / p).exists() else None
    )


def test_a_pure_python_source_archive_is_built_into_a_wheel_for_every_host(tmp_path: Path) -> None:
    """Flask-Mail 0.9.1 exists only as an sdist: it is built here (py3-none-any) and its own
    dependencies come as usual."""
    said: list[str] = []
    wheels = wheelhouse(
        _requirements(tmp_path, "Flask-Mail==0.9.1\n"), DEBIAN_12, tmp_path / "cache", said.append
    )
    assert "flask_mail-0.9.1-py3-none-any.whl" in wheels
    assert {"flask", "blinker"} <= {name.split("-")[0] for name in wheels}
    built = "  + flask_mail-0.9.1-py3-none-any.whl: built from the source archive of Flask-Mail==0.9.1"
    assert said == [built + " (pure Python)"]


def test_a_source_archive_with_compiled_code_is_still_refused(tmp_path: Path) -> None:
    """PyYAML 5.3.1 has no wheel for Python 3.11 and builds a C extension: it must not be built for
    this machine and shipped to the host."""
    with pytest.raises(ArtifactError) as error:
        wheelhouse(_requirements(tmp_path, "PyYAML==5.3.1\n"), DEBIAN_12, tmp_path / "cache")
    assert "could not get wheels for Python 3.11.2" in str(error.value)
    assert not list((tmp_path / "cache").rglob("*.whl"))
