"""push.installer: uv: the plan's venv step with uv, the pinned uv wheel, and the host's unpack
script (run here with the real sh, sha256sum and python3)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.config.errors import ConfigError
from deploy.config.loader import load_text
from deploy.layout import layout_for
from deploy.plan import Command
from deploy.push import uvtool
from deploy.push.artifact import requirements_hash
from deploy.push.pipwheels import Platform
from deploy.push.plan_push import push_plan
from deploy.remote.uv_commands import unpack_uv, uv_program
from tests.unit.push.test_plans import YAML, build, lines, rendered_map, served_state, states

pytestmark = pytest.mark.unit

UV_YAML = YAML + "push:\n  installer: uv\n"
PIP_YAML = YAML + "push:\n  installer: pip\n"
WHEEL = ("uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl", "ab" * 32, "uv-0.13.9.data/scripts/uv")


def _prepare(yaml: str, uv: dict[str, tuple[str, str, str]]) -> list[str]:
    config = load_text(yaml)
    hosts = states()
    push = replace(build(), installer=config.push.installer, uv=uv)
    (web1,) = push_plan(config, hosts, rendered_map(hosts), {"SECRET_KEY": "x"}, push).hosts
    return [line for line in lines(web1.prepare) if "/venvs/" in line or "uv" in line]


def test_uv_is_the_default_installer_and_pip_is_one_key_away() -> None:
    assert load_text(YAML).push.installer == "uv"
    venv = _prepare(PIP_YAML, {})
    assert not any("uv" in line for line in venv)
    assert any("pip install" in line and "--no-index --find-links /srv/shop/wheels" in line for line in venv)
    assert any("pip install" in line and " --no-compile " in line for line in venv)


def test_the_uv_installer_unpacks_the_checked_uv_then_makes_and_fills_the_venv_offline() -> None:
    venv = _prepare(UV_YAML, {"web1": WHEEL})
    unpack, make, fill = venv[0], venv[1], venv[2]
    assert "/srv/shop/tools/uv-0.13.9/uv /srv/shop/wheels/" + WHEEL[0] + " " + "ab" * 32 in unpack
    assert "venv --quiet --no-config --offline --no-python-downloads" in make
    assert make.endswith("/srv/shop/.uv-cache python3")
    assert fill.startswith("/srv/shop/tools/uv-0.13.9/uv pip install --quiet --no-config --offline")
    assert "--find-links /srv/shop/wheels --cache-dir /srv/shop/.uv-cache --link-mode hardlink" in fill
    # No bytecode at install time (deploy.remote.bytecode compiles it after the switch).
    assert "--link-mode hardlink --python /srv/shop/venvs/" in fill and "compile" not in fill
    assert not any(" -m venv " in line or " install --quiet --disable-pip" in line for line in venv)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_bytecode_is_compiled_after_the_switch_unless_push_bytecode_is_install(installer: str) -> None:
    for setting, at_install, later in (("", False, True), ("  bytecode: install\n", True, False)):
        config = load_text(f"{YAML}push:\n  installer: {installer}\n{setting}")
        assert config.push.bytecode == ("install" if at_install else "after_switch")
        hosts = states()
        push = replace(build(), installer=installer, uv={"web1": WHEEL} if installer == "uv" else {})
        (web1,) = push_plan(config, hosts, rendered_map(hosts), {"SECRET_KEY": "x"}, push).hosts
        (fill,) = [line for line in lines(web1.prepare) if " install --quiet" in line]
        flag = "--compile-bytecode" if installer == "uv" else " --compile "
        assert (flag in fill) == at_install and ("--no-compile" in fill) == (installer == "pip" and later)
        after = [line for line in lines(web1.finish) if "bytecode" in line]
        assert bool(after) == later
        cache = " /srv/shop/.uv-cache " if installer == "uv" else " '' "
        assert all(cache in line for line in after), after


def test_a_reused_venv_is_compiled_after_the_switch_only_if_it_never_was() -> None:
    config = load_text(YAML)
    for compiled, later in ((True, False), (False, True)):
        hosts = {n: replace(s, compiled_venvs=s.venvs if compiled else ()) for n, s in served_state().items()}
        (web1,) = push_plan(config, hosts, rendered_map(hosts), {"SECRET_KEY": "x"}, build()).hosts
        assert web1.venv_reused
        assert any("bytecode" in line for line in lines(web1.finish)) == later


def test_an_unknown_installer_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(YAML + "push:\n  installer: poetry\n")
    assert "installer" in str(caught.value)


def test_uv_is_pinned_for_x86_64_and_aarch64_only() -> None:
    assert uvtool.pinned("x86_64")[0].startswith(f"uv-{uvtool.UV_VERSION}-")
    assert "aarch64" in uvtool.pinned("aarch64")[0]
    with pytest.raises(uvtool.UvError, match=r"use push\.installer: pip"):
        uvtool.pinned("riscv64")


def test_a_cached_uv_wheel_is_used_only_when_its_sha256_is_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = b"the uv wheel"
    monkeypatch.setattr(uvtool, "_WHEELS", {"x86_64": ("uv.whl", hashlib.sha256(good).hexdigest())})
    (tmp_path / "uv").mkdir()
    (tmp_path / "uv" / "uv.whl").write_bytes(good)
    host = Platform("3.11.2", "x86_64", "glibc", "2.36")
    assert uvtool.uv_wheel(host, tmp_path).data == good
    (tmp_path / "uv" / "uv.whl").write_bytes(b"tampered")
    # The tampered copy is dropped and a download tried (here, from no index: it fails).
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(uvtool.UvError):
        uvtool.uv_wheel(host, tmp_path)
    assert not (tmp_path / "uv" / "uv.whl").exists()  # the tampered copy is gone


def _run(command: Command) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command.argv, capture_output=True, text=True, check=False)


def test_the_host_unpacks_uv_only_from_a_wheel_with_the_pinned_sha256(tmp_path: Path) -> None:
    shop = layout_for(load_text(YAML))
    layout = replace(shop, paths=replace(shop.paths, base=str(tmp_path)), wheels=f"{tmp_path}/wheels")
    program = b"#!/bin/sh\necho uv-here\n"
    wheel_bytes = io.BytesIO()
    with zipfile.ZipFile(wheel_bytes, "w") as zf:
        zf.writestr("uv-0.13.9.data/scripts/uv", program)
    os.makedirs(layout.wheels, exist_ok=True)
    Path(layout.wheels, "uv.whl").write_bytes(wheel_bytes.getvalue())
    good = hashlib.sha256(wheel_bytes.getvalue()).hexdigest()
    bad = _run(unpack_uv(layout, "0.13.9", "uv.whl", "0" * 64, "uv-0.13.9.data/scripts/uv"))
    assert bad.returncode != 0 and "does not have the sha256" in bad.stderr
    assert not os.path.exists(uv_program(layout, "0.13.9"))
    ok = _run(unpack_uv(layout, "0.13.9", "uv.whl", good, "uv-0.13.9.data/scripts/uv"))
    assert ok.returncode == 0, ok.stderr
    assert (
        subprocess.run([uv_program(layout, "0.13.9")], capture_output=True, text=True).stdout == "uv-here\n"
    )
    # Once there, it is kept: even a changed wheel file is not read again.
    Path(layout.wheels, "uv.whl").write_bytes(b"changed")
    assert _run(unpack_uv(layout, "0.13.9", "uv.whl", good, "uv-0.13.9.data/scripts/uv")).returncode == 0


def test_a_uv_venv_has_its_own_key_and_pip_keys_stay_as_they_were() -> None:
    pip_key = requirements_hash(b"flask==3.1.3\n", "3.11.2", "cp311-glibc2.36-x86_64")
    assert requirements_hash(b"flask==3.1.3\n", "3.11.2", "cp311-glibc2.36-x86_64", "pip") == pip_key
    uv_key = requirements_hash(b"flask==3.1.3\n", "3.11.2", "cp311-glibc2.36-x86_64", "uv")
    assert uv_key != pip_key
    pip_venv = [line for line in _prepare(PIP_YAML, {}) if "venv" in line]
    uv_venv = [line for line in _prepare(UV_YAML, {"web1": WHEEL}) if "venv" in line]
    assert f"/srv/shop/venvs/{pip_key}" in pip_venv[0] and f"/srv/shop/venvs/{uv_key}" in uv_venv[0]
