"""push.installer: uv on a real host: the venv uv fills from the shipped wheels holds exactly the
distributions pip installs (names, versions, and every installed file's RECORD hash), for the example
app, for a heavy data-science app (numpy, scipy, scikit-learn) and for the 77 distributions of a
70-dependency web app (dtale 3.22.0's, pinned); uv itself is shipped once and the
app serves from the uv venv."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.remote import bytecode
from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Load, Project, addresses, make_project, private_sandbox, versions

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


def _config(project: Project, installer: str) -> None:
    """push.installer; a new venv starts without bytecode (compiled after the switch): on a busy
    machine its first start takes more than the 8 s the other host tests give."""
    project.write_config(push=f"installer: {installer}")
    config = project.path / "deploy.yaml"
    config.write_text(config.read_text().replace("health_timeout: 8", "health_timeout: 120"))


def _push(project: Project, installer: str, version: str) -> str:
    _config(project, installer)
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

    _config(project, "uv")
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


#: Run by the venv's Python: every module of the venv compiled by the background unit, each .pyc whole
#: (its header matches the source it was compiled from and the code object loads): compileall renames
#: finished files into place, so no reader ever meets half of one.
PYC_CHECK = r"""
import importlib.util, marshal, os, sys
lib = sys.argv[1]
sources = whole = 0
missing = []
for folder, _dirs, files in os.walk(lib):
    for name in files:
        if not name.endswith(".py"):
            continue
        source = os.path.join(folder, name)
        sources += 1
        pyc = importlib.util.cache_from_source(source)
        if not os.path.exists(pyc):
            try:
                compile(open(source, "rb").read(), source, "exec")
            except (SyntaxError, ValueError):
                continue  # pip's install-time compile skips these too
            missing.append(source)
            continue
        data = open(pyc, "rb").read()
        stat = os.stat(source)
        assert data[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF, pyc
        assert int.from_bytes(data[12:16], "little") == stat.st_size & 0xFFFFFFFF, pyc
        marshal.loads(data[16:])
        whole += 1
print(sources, whole, len(missing), missing[:5])
"""


def _venv_path(box: Sandbox) -> str:
    done = box.run(box.hosts()[0], ["readlink", "-f", "/srv/flaskr/current/.venv"], check=True)
    return done.stdout.strip()


def _compiled(box: Sandbox, venv: str) -> bool:
    return box.run(box.hosts()[0], ["test", "-e", f"{venv}/{bytecode.COMPILED}"]).returncode == 0


def _wait_compiled(box: Sandbox, venv: str) -> None:
    deadline = time.monotonic() + 900
    while not _compiled(box, venv):
        assert time.monotonic() < deadline, f"the bytecode of {venv} was never compiled"
        time.sleep(1)


def _heavy(project: Project, comment: str) -> None:
    """The heavy requirements, with `comment` (a new venv of the same wheels)."""
    requirements = project.path / "requirements.txt"
    base = requirements.read_text(encoding="utf-8").split(HEAVY)[0]
    requirements.write_text(f"{base}{HEAVY}# {comment}\n", encoding="utf-8")


def test_bytecode_is_compiled_after_the_switch_and_pushes_and_rollbacks_meanwhile_are_safe(
    box: Sandbox, project: Project
) -> None:
    host = box.hosts()[0]
    # The app imports the heavy packages at start: it starts from source while nothing is compiled.
    start = "    import sklearn.linear_model  # noqa\n"
    # uv: once a venv's compile is done, uv's cache holds the .pyc, and the next venv has them at once.
    _heavy(project, "uv one")
    _config(project, "uv")
    project.set_version("bc-0", start)
    out = project.deploy("push", check=True, timeout=900)
    assert "bytecode" in out.stdout, out.stdout  # its step, after the switch
    _wait_compiled(box, _venv_path(box))
    _heavy(project, "uv two")
    project.set_version("bc-1", start)
    project.deploy("push", check=True, timeout=900)
    venv = _venv_path(box)
    sklearn = box.run(host, [f"{venv}/bin/python", "-c", "import sklearn; print(sklearn.__cached__)"])
    links = box.run(host, ["stat", "-c", "%h", sklearn.stdout.strip()], check=True)
    assert int(links.stdout) >= 2, sklearn.stdout  # hard-linked from uv's cache at install time

    # pip: a new venv without bytecode; the push does not wait for its compile.
    _heavy(project, "pip")
    _config(project, "pip")
    project.set_version("bc-2", start)
    project.deploy("push", check=True, timeout=900)
    venv = _venv_path(box)
    assert not _compiled(box, venv)
    assert versions(project) == ["bc-2"]
    # The app user cannot write bytecode into the venv itself.
    site = box.run(
        host, [f"{venv}/bin/python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    )
    writable = box.run(host, ["runuser", "-u", "flaskr", "--", "test", "-w", site.stdout.strip()])
    assert writable.returncode != 0
    # Caught mid-compile (some .pyc written, others not) and held there while a push reuses the venv
    # and a rollback returns to the release before.
    unit = f"flaskr-bytecode-{venv.rsplit('/', 1)[1]}.service"
    deadline = time.monotonic() + 60
    while box.run(host, ["systemctl", "is-active", "--quiet", unit]).returncode != 0:
        assert time.monotonic() < deadline, f"{unit} never started"
        time.sleep(0.2)
    box.run(host, ["systemctl", "kill", "--signal=SIGSTOP", unit], check=True)
    with Load(addresses(project)) as load:
        project.set_version("bc-3", start)
        project.deploy("push", check=True, timeout=900)
        assert _venv_path(box) == venv and versions(project) == ["bc-3"]
        project.deploy("rollback", check=True, timeout=900)
        assert versions(project) == ["bc-2"]
    assert not _compiled(box, venv)
    box.run(host, ["systemctl", "kill", "--signal=SIGCONT", unit], check=True)
    assert load.failed == 0, load.errors
    assert load.counts["ok"] > 0
    _wait_compiled(box, venv)
    done = box.run(host, [f"{venv}/bin/python", "-c", PYC_CHECK, f"{venv}/lib"], timeout=300, check=True)
    sources, whole, missing, _names = done.stdout.split(" ", 3)
    assert int(missing) == 0, done.stdout
    assert int(whole) > 1000 and int(whole) <= int(sources), done.stdout


def test_uv_installs_the_same_distributions_as_pip_for_a_70_dependency_app(
    box: Sandbox, project: Project
) -> None:
    """dtale 3.22.0's pinned requirements (pandas, matplotlib, dash, statsmodels, xlrd...), the issue's
    70-dependency app: a wheel with a scripts folder (xlrd) once made a uv venv fail after the
    background compile had touched uv's cache; a warm uv venv is pushed after the cold one for that."""
    requirements = project.path / "requirements.txt"
    base = requirements.read_text(encoding="utf-8").split(HEAVY)[0]
    pinned = (Path(__file__).parent / "dtale-requirements.txt").read_text(encoding="utf-8")
    requirements.write_text(base + pinned, encoding="utf-8")
    _push(project, "uv", "uv-dtale")
    _wait_compiled(box, _venv_path(box))
    requirements.write_text(
        base + pinned + "# a second uv venv, from uv's compiled cache\n", encoding="utf-8"
    )
    _push(project, "uv", "uv-dtale-warm")
    uv = _dists(box)
    assert {"dtale", "pandas", "dash", "statsmodels", "xlrd"} <= set(uv)
    assert len(uv) >= 75, sorted(uv)

    _push(project, "pip", "pip-dtale")
    pip = _dists(box)
    _same_distributions(pip, uv)
