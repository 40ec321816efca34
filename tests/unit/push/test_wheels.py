"""The wheelhouse is closed over the host's environment markers, not this machine's.

Real pip, no index: small wheels built here (METADATA with Requires-Dist lines) in a folder pip
reads with --no-index --find-links. The machine running the tests may have any Python 3.11+; the
assertions hold whatever it is, and the redis/async-timeout case of the bug report is the first.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from deploy.project.requirements import RequirementSet, environment, resolve, top_level
from deploy.push import wheels as hostmarkers
from deploy.push.artifact import ArtifactError, Platform, requirements_hash
from deploy.push.wheelhouse import wheelhouse

pytestmark = pytest.mark.unit

#: The fixed, unsatisfying marker of the bug report, and its complement.
OLD = 'python_full_version <= "3.11.2"'
NEW = 'python_full_version > "3.11.2"'


def make_wheel(folder: Path, name: str, version: str, *requires: str, extras: tuple[str, ...] = ()) -> None:
    """A pure-Python wheel, installable, with an empty package and these `Requires-Dist` lines."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
    contents = {
        f"{name}/__init__.py": "",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = ""
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    contents[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of wheels that pip uses instead of any index (and no pip configuration file)."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    # The bug report's shape: redis needs async-timeout only up to Python 3.11.2.
    make_wheel(folder, "redis", "5.0.1", f"async-timeout>=4.0.2; {OLD}")
    make_wheel(folder, "async_timeout", "4.0.3")
    make_wheel(folder, "a", "1.0", f"b; {OLD}", f"c; {NEW}", 'd; extra == "x"', extras=("x",))
    make_wheel(folder, "b", "1.0", "e")
    make_wheel(folder, "c", "1.0")
    make_wheel(folder, "d", "1.0")
    make_wheel(folder, "e", "1.0")
    return folder


def files(text: str, **more: str) -> RequirementSet:
    found = {"requirements.txt": text.encode(), **{k.replace("_", "."): v.encode() for k, v in more.items()}}
    return resolve("requirements.txt", found.get)


def host(version: str, machine: str = "x86_64") -> Platform:
    return Platform(version, machine, "glibc", "2.36")


def names(wheels: dict[str, Path]) -> set[str]:
    return {name.split("-")[0].lower() for name in wheels}


def test_a_dependency_only_the_hosts_python_needs_is_downloaded(index: Path, tmp_path: Path) -> None:
    said: list[str] = []
    wheels = wheelhouse(files("redis==5.0.1\n"), host("3.11.2"), tmp_path / "cache", said.append)
    assert names(wheels) == {"redis", "async_timeout"}
    if said:  # this machine runs Python > 3.11.2 (as in the report): deploy added it, and said so
        assert said == [
            "  + async_timeout-4.0.3-py3-none-any.whl for Python 3.11.2: async-timeout>=4.0.2 "
            f"(required by redis 5.0.1 when {OLD})"
        ]
    newer = wheelhouse(files("redis==5.0.1\n"), host("3.11.7"), tmp_path / "cache")
    assert "redis" in names(newer)


def test_markers_are_evaluated_for_each_hosts_full_python_version(index: Path, tmp_path: Path) -> None:
    old = wheelhouse(files("a==1.0\n"), host("3.11.2"), tmp_path / "cache")
    assert {"a", "b", "e"} <= names(old)  # e: b's own requirement, followed
    new = wheelhouse(files("a==1.0\n"), host("3.11.7"), tmp_path / "cache")
    assert {"a", "c"} <= names(new)
    # Different wheel sets, different cache folders and venv keys.
    tag = host("3.11.2").tag
    assert requirements_hash(b"a==1.0\n", "3.11.2", tag) != requirements_hash(b"a==1.0\n", "3.11.7", tag)


def test_extras_asked_for_by_another_package_are_followed(index: Path, tmp_path: Path) -> None:
    # f needs a[x] only on an old Python: pip here may skip a entirely, so a's extra is deploy's job.
    make_wheel(index, "f", "1.0", f"a[x]; {OLD}")
    wheels = wheelhouse(files("f\n"), host("3.11.2"), tmp_path / "cache")
    assert {"f", "a", "b", "d", "e"} <= names(wheels)
    assert "a" not in names(wheelhouse(files("f\n"), host("3.12.1"), tmp_path / "cache"))


def test_markers_of_the_requirements_file_are_evaluated_for_the_host(index: Path, tmp_path: Path) -> None:
    make_wheel(index, "b", "2.0", "e")
    requirements = files(
        f"-r base.txt\n-c constraints.txt\nc ; {NEW}\n", base_txt=f"b ; {OLD}\n", constraints_txt="b<2\n"
    )
    wheels = wheelhouse(requirements, host("3.11.2"), tmp_path / "cache")
    assert "b-1.0-py3-none-any.whl" in wheels  # the constraints file applies to what deploy adds
    assert "b-2.0-py3-none-any.whl" not in wheels
    assert "e" in names(wheels)


def test_a_version_that_does_not_satisfy_the_hosts_requirement_is_replaced(
    index: Path, tmp_path: Path
) -> None:
    make_wheel(index, "g", "2.0")
    make_wheel(index, "g", "1.0")
    make_wheel(index, "h", "1.0", "g", f"g<2; {OLD}")
    wheels = wheelhouse(files("h\n"), host("3.11.2"), tmp_path / "cache")
    assert "g-1.0-py3-none-any.whl" in wheels


def test_a_requirement_no_wheel_satisfies_names_the_package_and_the_host(index: Path, tmp_path: Path) -> None:
    make_wheel(index, "k", "1.0", f"nowhere>=1; {OLD}")
    with pytest.raises(ArtifactError) as error:
        wheelhouse(files("k\n"), host("3.11.2"), tmp_path / "cache")
    message = str(error.value)
    assert message.startswith("could not get wheels for Python 3.11.2 on x86_64 (glibc 2.36)")
    assert f"that its environment markers require: nowhere>=1 (required by k 1.0 when {OLD})" in message
    assert "needs a wheel" in message and str(tmp_path) not in message
    # Nothing was marked complete: the next push tries again.
    assert not list((tmp_path / "cache").glob("*/.complete"))


def test_the_machine_is_the_hosts(index: Path, tmp_path: Path) -> None:
    make_wheel(index, "m", "1.0", 'n; platform_machine == "aarch64"')
    make_wheel(index, "n", "1.0")
    assert "n" in names(wheelhouse(files("m\n"), host("3.11.2", "aarch64"), tmp_path / "cache"))
    assert "n" not in names(wheelhouse(files("m\n"), host("3.11.2", "x86_64"), tmp_path / "cache"))


# --- the closure itself, without pip -------------------------------------------------------------


def wheel(name: str, version: str, *requires: str) -> hostmarkers.Wheel:
    return hostmarkers.Wheel(f"{name}-{version}-py3-none-any.whl", name, version, requires)


def test_unmet_follows_markers_extras_and_versions() -> None:
    env = environment("3.11.2", "x86_64")
    assert env["python_version"] == "3.11" and env["implementation_version"] == "3.11.2"
    roots = [hostmarkers.Root("a[x]==1.0 --hash=sha256:00", "requirements.txt:1")]
    present = [
        wheel("a", "1.0", f"b; {OLD}", f"c; {NEW}", 'd[y]; extra == "x"'),
        wheel("d", "1.0", 'q; extra == "y"', 'r; extra == "other"'),
    ]
    needs = {need.name: need for need in hostmarkers.unmet(present, roots, env)}
    assert set(needs) == {"b", "q"}  # c is for newer Pythons, r for an extra nobody asks for
    assert needs["b"].download_line == "b"
    assert needs["q"].describe() == 'q (required by d 1.0[y] when extra == "y")'
    # With b present, its own requirement is next.
    present.append(wheel("b", "1.0", "e>=2"))
    present.append(wheel("e", "1.0"))
    needs = {need.name: need for need in hostmarkers.unmet(present, roots, env)}
    assert needs["e"].describe() == "e>=2 (required by b 1.0)"
    # A missing app requirement is downloaded from its own line (hashes and all).
    roots.append(hostmarkers.Root(f"z==1 ; {OLD} --hash=sha256:11", "requirements.txt:2"))
    needs = {need.name: need for need in hostmarkers.unmet(present, roots, env)}
    assert needs["z"].download_line == "z==1 --hash=sha256:11"  # this machine's pip would skip the marker


def test_top_level_reads_requirement_lines_not_constraints_or_options() -> None:
    found = files(
        "--index-url https://example.org/simple\n-r base.txt\n-c constraints.txt\nflask==3.1.3\n",
        base_txt='redis==5.0.1 ; python_version >= "3.8"\n',
        constraints_txt="async-timeout==4.0.3\n",
    )
    top = top_level(found)
    assert top.lines == [
        ("requirements.txt:4", "flask==3.1.3"),
        ("base.txt:1", 'redis==5.0.1 ; python_version >= "3.8"'),
    ]
    assert top.constraints == ["constraints.txt"]
