"""The wheelhouse with real pip and PyPI: a requirement published only as a source archive."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from deploy.project.requirements import resolve
from deploy.push.artifact import ArtifactError, Platform
from deploy.push.wheelhouse import wheelhouse
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
    built = "  + flask_mail-0.9.1-py3-none-any.whl: built from the source archive of flask-mail==0.9.1"
    # pip names the requirement as written, uv by its normalized name.
    assert [line.lower() for line in said] == [built + " (pure python)"]


def test_a_source_archive_with_compiled_code_is_still_refused(tmp_path: Path) -> None:
    """PyYAML 5.3.1 has no wheel for Python 3.11 and builds a C extension: it must not be built for
    this machine and shipped to the host."""
    with pytest.raises(ArtifactError) as error:
        wheelhouse(_requirements(tmp_path, "PyYAML==5.3.1\n"), DEBIAN_12, tmp_path / "cache")
    assert "could not get wheels for Python 3.11.2" in str(error.value)
    assert not list((tmp_path / "cache").rglob("*.whl"))


def _sums(wheels: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in wheels.items()}


def test_uv_and_pip_give_the_same_wheel_files_from_pypi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source-only package (built here, the same bytes both ways), a dependency only the host's Python
    needs (redis 5.0.1 wants async-timeout up to 3.11.2), and packages with several wheels for the host
    (charset-normalizer: cp311, abi3 and pure Python; pip picks cp311)."""
    requirements = _requirements(
        tmp_path, "Flask-Mail==0.9.1\nredis==5.0.1\ncharset-normalizer==3.3.2\nMarkupSafe==2.1.5\n"
    )
    said: list[str] = []
    monkeypatch.setenv("DEPLOY_WHEELHOUSE", "uv")
    by_uv = wheelhouse(requirements, DEBIAN_12, tmp_path / "uv", said.append)
    assert not [line for line in said if "wheels with pip download" in line], said
    monkeypatch.setenv("DEPLOY_WHEELHOUSE", "pip")
    by_pip = wheelhouse(requirements, DEBIAN_12, tmp_path / "pip")
    assert _sums(by_uv) == _sums(by_pip)
    assert "async_timeout-5.0.1-py3-none-any.whl" in by_uv
    assert "charset_normalizer-3.3.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" in by_uv
