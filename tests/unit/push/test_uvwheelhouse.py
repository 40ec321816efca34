"""uv builds the wheelhouse (deploy.push.uvwheelhouse): the wheel pip would pick for the host, the user's
pip settings passed on to uv, and the same wheel files as `pip download` gives. A local folder of wheels
stands in for the index (no network); the last test needs the uv program deploy ships."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from pip._internal.utils.compatibility_tags import get_supported

from deploy.push.artifact import Platform
from deploy.push.pipconfig import uv_options
from deploy.push.pipwheels import default_cache
from deploy.push.uvwheelhouse import Fallback, local_uv, pick_wheel, read_lock, supported_tags
from deploy.push.wheelhouse import wheelhouse
from tests.conftest import unavailable
from tests.unit.push.test_wheels import OLD, files, make_wheel

pytestmark = pytest.mark.unit

DEBIAN_12 = Platform("3.11.2", "x86_64", "glibc", "2.36")
OLD_GLIBC = Platform("3.11.2", "x86_64", "glibc", "2.17")


@pytest.mark.parametrize("host", [DEBIAN_12, OLD_GLIBC, Platform("3.12.3", "aarch64", "glibc", "2.39")])
def test_the_tags_are_pips_in_pips_order(host: Platform) -> None:
    minor = host.python_version.split(".")[1]
    pips = get_supported(
        version=f"3{minor}", platforms=host.pip_platforms(), impl="cp", abis=[f"cp3{minor}", "abi3", "none"]
    )
    assert [str(tag) for tag in supported_tags(host)] == [str(tag) for tag in pips]


def test_the_wheel_pip_picks_is_the_one_with_the_best_tag() -> None:
    names = [
        "charset_normalizer-3.5.3-py3-none-any.whl",
        "charset_normalizer-3.5.3-cp37-abi3-manylinux_2_28_x86_64.whl",
        "charset_normalizer-3.5.3-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    assert pick_wheel(names, DEBIAN_12) == names[2]
    # Too new a glibc for the host: the pure-Python wheel, not the compiled one.
    assert pick_wheel(names, OLD_GLIBC) == names[0]
    assert pick_wheel(["x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"], DEBIAN_12) is None


def test_the_lock_is_read_for_the_hosts_markers(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\n'
        '[[packages]]\nname = "async-timeout"\nversion = "5.0.1"\n'
        "marker = \"python_full_version <= '3.11.2'\"\n"
        'wheels = [{ url = "https://example.org/async_timeout-5.0.1-py3-none-any.whl", '
        'hashes = { sha256 = "ab" } }]\n'
        '[[packages]]\nname = "flask-mail"\nversion = "0.9.1"\n'
        'sdist = { url = "https://example.org/Flask-Mail-0.9.1.tar.gz", hashes = { sha256 = "cd" } }\n'
        '[[packages]]\nname = "mine"\nversion = "1.0"\ndirectory = { path = "." }\n'
    )
    with pytest.raises(Fallback, match="mine is not from a package index"):
        read_lock(lock, DEBIAN_12)
    lock.write_text(lock.read_text().split('[[packages]]\nname = "mine"')[0])
    old = read_lock(lock, DEBIAN_12)
    assert [(p.name, p.wheel.sha256 if p.wheel else None) for p in old] == [
        ("async-timeout", "ab"),
        ("flask-mail", None),
    ]
    assert [p.name for p in read_lock(lock, Platform("3.11.7", "x86_64", "glibc", "2.36"))] == ["flask-mail"]


def test_pips_settings_become_uv_options(tmp_path: Path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nindex-url = https://mirror.example/simple\nextra-index-url = file:///a file:///b\n"
        "cert = /etc/ca.pem\nconstraint = /etc/c.txt\n[download]\nfind-links = /wheels\n[install]\npre = 1\n"
    )
    env = {"HOME": str(tmp_path), "PIP_CONFIG_FILE": str(config), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    settings, why = uv_options({**env, "PIP_DEFAULT_TIMEOUT": "180", "PIP_TRUSTED_HOST": "mirror.example"})
    assert settings is not None, why
    assert settings.options == [
        "--index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "file:///a",
        "--extra-index-url",
        "file:///b",
        "--constraint",
        "/etc/c.txt",
        "--find-links",
        "/wheels",
        "--allow-insecure-host",
        "mirror.example",
    ]
    assert settings.env == {"SSL_CERT_FILE": "/etc/ca.pem", "UV_HTTP_TIMEOUT": "180"}
    # [install] is not read by pip download; a setting uv has no counterpart for sends it back to pip.
    assert uv_options({**env, "PIP_CLIENT_CERT": "/me.pem"}) == (
        None,
        "pip's setting client-cert has no counterpart in uv",
    )
    _, why = uv_options({**env, "PIP_INDEX_URL": "https://me:secret@mirror.example/simple"})
    assert why == "pip's index-url has credentials, which deploy's downloads do not send"
    settings, _ = uv_options({**env, "PIP_CONFIG_FILE": os.devnull})
    assert settings is not None and settings.options == []


def _sums(wheels: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in wheels.items()}


def test_uv_and_pip_give_the_same_wheel_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        local_uv(default_cache())
    except Fallback as exc:
        unavailable(f"needs the uv program deploy ships: {exc}")
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    make_wheel(index, "redis", "5.0.1", f"async-timeout>=4.0.2; {OLD}")
    make_wheel(index, "async_timeout", "4.0.3")
    make_wheel(index, "async_timeout", "4.0.2")
    make_wheel(index, "a", "1.0", "b", 'd; extra == "x"', extras=("x",))
    make_wheel(index, "b", "1.0")
    make_wheel(index, "d", "1.0")
    requirements = files("redis==5.0.1\na[x]\n")
    said: list[str] = []
    monkeypatch.setenv("DEPLOY_WHEELHOUSE", "uv")
    by_uv = wheelhouse(requirements, DEBIAN_12, tmp_path / "uv", said.append)
    assert not said, said  # uv did it: no fallback to pip, nothing left for the host's markers
    monkeypatch.setenv("DEPLOY_WHEELHOUSE", "pip")
    by_pip = wheelhouse(requirements, DEBIAN_12, tmp_path / "pip")
    assert _sums(by_uv) == _sums(by_pip)
    assert {"async_timeout-4.0.3-py3-none-any.whl", "d-1.0-py3-none-any.whl"} <= set(by_uv)
