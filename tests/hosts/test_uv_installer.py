"""push.installer: uv on a real host: the venv uv fills from the shipped wheels holds exactly the
distributions pip installs (names, versions, and every installed file's RECORD hash), for the example
app and for a heavy data-science app (numpy, scipy, scikit-learn); uv itself is shipped once and the
app serves from the uv venv."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, make_project, private_sandbox, versions

pytestmark = pytest.mark.hosts

#: Run by the venv's Python on the host: each distribution's name, version and RECORD (path -> hash),
#: without what differs by installer only: bytecode caches, the console scripts each installer writes
#: for its venv's Python, and the installer's own dist-info files (INSTALLER, RECORD, REQUESTED,
#: direct_url.json, and uv's uv_cache.json); INSTALLER is kept apart, to show who installed it.
DISTS = r"""
import json, importlib.metadata as md
out = {}
skip_names = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json", "uv_cache.json"}
for dist in md.distributions():
    files = {}
    for f in dist.files or []:
        path = str(f)
        name = path.rsplit("/", 1)[-1]
        if path.endswith(".pyc") or "/__pycache__/" in path or path.startswith("../../../bin/"):
            continue
        if ".dist-info/" in path and name in skip_names:
            continue
        files[path] = f.hash.value if f.hash else None
    out[dist.metadata["Name"].lower()] = {"version": dist.version, "files": files,
        "installer": (dist.read_text("INSTALLER") or "").strip()}
print(json.dumps(out, sort_keys=True))
"""

HEAVY = "numpy==2.2.6\nscipy==1.15.3\nscikit-learn==1.6.1\n"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "uv-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    made = make_project(tmp_path_factory.mktemp("uv-project"), box.hosts())
    made.deploy("setup", check=True)
    return made


def _push(project: Project, installer: str, version: str) -> str:
    project.write_config(push=f"installer: {installer}")
    project.set_version(version)
    result = project.deploy("push", check=True, timeout=600)
    assert versions(project) == [version]
    return result.stdout + result.stderr


def _dists(box: Sandbox) -> dict[str, dict[str, object]]:
    """The distributions in the venv of the release the host serves."""
    host = box.hosts()[0]
    done = box.run(host, ["/srv/flaskr/current/.venv/bin/python", "-c", DISTS], timeout=120, check=True)
    data: dict[str, dict[str, object]] = json.loads(done.stdout)
    return data


def _same_distributions(pip: dict[str, dict[str, object]], uv: dict[str, dict[str, object]]) -> None:
    assert {n: d["installer"] for n, d in pip.items()} == dict.fromkeys(pip, "pip")
    assert {n: d["installer"] for n, d in uv.items()} == dict.fromkeys(uv, "uv")
    assert {n: d["version"] for n, d in uv.items()} == {n: d["version"] for n, d in pip.items()}
    for name in pip:
        assert uv[name]["files"] == pip[name]["files"], name
        assert pip[name]["files"], name  # hashes were compared, not two empty lists


def test_uv_installs_the_same_distributions_as_pip_for_the_example_app(
    box: Sandbox, project: Project
) -> None:
    first = _push(project, "pip", "pip-1")
    assert "uv 0.13.9" not in first
    pip = _dists(box)
    assert "flask" in pip and "gunicorn" in pip

    project.write_config(push="installer: uv")
    project.set_version("uv-1")
    dry = project.deploy("push", "--dry-run", check=True)
    # The plan shows uv shipped (its wheel among the wheels), checked and unpacked, then used.
    plan = dry.stdout + dry.stderr
    assert "unpack-uv /srv/flaskr/tools/uv-0.13.9/uv /srv/flaskr/wheels/uv-0.13.9-py3-none-" in plan, plan
    assert "/srv/flaskr/tools/uv-0.13.9/uv pip install --quiet --no-config --offline --no-index" in plan, plan
    assert " -m venv " not in plan and "pip install --quiet --disable-pip-version-check" not in plan
    _push(project, "uv", "uv-1")
    uv = _dists(box)
    _same_distributions(pip, uv)
    host = box.hosts()[0]
    shipped = box.run(host, ["sh", "-c", "ls /srv/flaskr/tools/ && /srv/flaskr/tools/uv-0.13.9/uv --version"])
    assert shipped.stdout.split()[:3] == ["uv-0.13.9", "uv", "0.13.9"], shipped.stdout
    UV_INODE.append(_uv_inode(box))


UV_INODE: list[str] = []


def _uv_inode(box: Sandbox) -> str:
    done = box.run(box.hosts()[0], ["stat", "-c", "%i %Y", "/srv/flaskr/tools/uv-0.13.9/uv"], check=True)
    return done.stdout.strip()


def test_uv_installs_the_same_distributions_as_pip_for_a_data_science_app(
    box: Sandbox, project: Project
) -> None:
    requirements = project.path / "requirements.txt"
    requirements.write_text(requirements.read_text(encoding="utf-8") + HEAVY, encoding="utf-8")
    _push(project, "uv", "uv-heavy")
    # uv was on the host already: the same program (not unpacked again).
    assert _uv_inode(box) == UV_INODE[0]
    uv = _dists(box)
    assert {"numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl"} <= set(uv)

    _push(project, "pip", "pip-heavy")
    pip = _dists(box)
    _same_distributions(pip, uv)
    # The app imports them from the venv it runs in.
    host = box.hosts()[0]
    probe = box.run(
        host,
        [
            "/srv/flaskr/current/.venv/bin/python",
            "-c",
            "import sklearn, scipy, numpy; print(sklearn.__version__)",
        ],
        timeout=120,
    )
    assert probe.stdout.strip() == "1.6.1", probe.stderr
