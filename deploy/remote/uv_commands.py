"""The host commands of `push.installer: uv`: uv unpacked once from its shipped (checksum-verified)
wheel, a venv made with it, and filled from the shipped wheels offline, packages hard-linked from a
cache deploy owns on the host (beside the venvs, so later venvs of the same packages take no copies)."""

from __future__ import annotations

from deploy.layout import Layout
from deploy.plan import Command

#: Verify the wheel's sha256, take the uv program out of it under a temporary name, rename it in
#: place; nothing to do when that uv is already there.
_UNPACK = r"""set -e
bin="$1" wheel="$2" sum="$3" entry="$4"
[ -x "$bin" ] && exit 0
echo "$sum  $wheel" | sha256sum --check --quiet --strict - || {
  echo "uv: $wheel does not have the sha256 deploy pinned ($sum)" >&2; exit 1; }
mkdir -p -- "${bin%/*}"
python3 -I -S -c 'import os, sys, zipfile
data = zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])
with open(sys.argv[3], "wb") as out:
    out.write(data)
os.chmod(sys.argv[3], 0o755)' "$wheel" "$entry" "$bin.tmp"
mv -f -- "$bin.tmp" "$bin"
"""


def uv_program(layout: Layout, version: str) -> str:
    """Where uv `version` lives on a host (one per version, shared by the app's pushes)."""
    return f"{layout.paths.base}/tools/uv-{version}/uv"


def uv_cache(layout: Layout) -> str:
    """uv's cache on the host: on the venvs' filesystem, so installs hard-link from it."""
    return f"{layout.paths.base}/.uv-cache"


def unpack_uv(layout: Layout, version: str, wheel: str, sha256: str, entry: str) -> Command:
    program = uv_program(layout, version)
    return Command(
        ("sh", "-c", _UNPACK, "unpack-uv", program, f"{layout.wheels}/{wheel}", sha256, entry),
        f"uv {version} (sha256 checked, unpacked once per host)",
        sudo=True,
    )


def uv_venv(layout: Layout, version: str, venv: str, python: str = "python3") -> Command:
    return Command(
        (
            "sh",
            "-c",
            'rm -rf -- "$2" && exec "$1" venv --quiet --no-config --offline --no-python-downloads '
            '--cache-dir "$3" --python "$4" "$2"',
            "uv-venv",
            uv_program(layout, version),
            venv,
            uv_cache(layout),
            python,
        ),
        f"new virtualenv {venv} (uv)",
        sudo=True,
    )


def uv_install(
    layout: Layout, version: str, venv: str, requirements: str, compile_bytecode: bool = False
) -> Command:
    """Fill `venv` from the shipped wheels offline; its bytecode compiled later (deploy.remote.bytecode)
    unless `compile_bytecode` (push.bytecode: install)."""
    return Command(
        (
            uv_program(layout, version),
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--offline",
            "--no-index",
            "--find-links",
            layout.wheels,
            "--cache-dir",
            uv_cache(layout),
            "--link-mode",
            "hardlink",
            *(("--compile-bytecode",) if compile_bytecode else ()),
            "--python",
            f"{venv}/bin/python",
            "-r",
            requirements,
        ),
        f"install the requirements from the shipped wheels with uv {version}",
        sudo=True,
    )
