"""Requirements a push installs: includes followed and hashed, pyproject.toml dependencies, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.project.requirements import RequirementsError, includes, resolve, src_root
from deploy.push.artifact import (
    Artifact,
    ArtifactError,
    FileEntry,
    Platform,
    pack,
    requirements_hash,
)
from deploy.push.wheelhouse import wheelhouse
from deploy.render.render import render

pytestmark = pytest.mark.unit

PYPROJECT = b"""\
[project]
name = "shop"
version = "1.0"
dependencies = [
    "Flask==3.1.3",
    "gunicorn==27.0.1 ; sys_platform == 'linux'",
]
[project.optional-dependencies]
dev = ["pytest"]
"""


def reader(files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    return files.get


def test_includes_are_followed_relative_to_the_including_file() -> None:
    files = {
        "requirements.txt": (
            b"# prod\n-r requirements/prod.txt\n--constraint=constraints.txt\nblinker==1.9.0\n"
        ),
        "requirements/prod.txt": b"-r base.txt\nFlask==3.1.3  # web\n",
        "requirements/base.txt": b"--requirement ../requirements.txt\ngunicorn==27.0.1\n",
        "constraints.txt": b"Werkzeug==3.1.9\n",
    }
    found = resolve("requirements.txt", reader(files))
    assert found.included == ["constraints.txt", "requirements/base.txt", "requirements/prod.txt"]
    assert found.generated is None and found.install_file == "requirements.txt"
    # Each included file's bytes count: editing one makes a new virtualenv.
    edited = dict(files, **{"requirements/base.txt": b"gunicorn==27.0.2\n"})
    assert resolve("requirements.txt", reader(edited)).key != found.key
    assert resolve("requirements.txt", reader(files)).key == found.key


def test_a_file_without_includes_keeps_its_plain_bytes_as_key() -> None:
    # Virtualenvs built before includes were followed stay valid.
    found = resolve("requirements.txt", reader({"requirements.txt": b"Flask==3.1.3\n"}))
    assert found.key == b"Flask==3.1.3\n" and found.included == []


def test_include_forms_and_continuations() -> None:
    text = (
        "-rone.txt\n-c two.txt\n--requirement = three.txt\nflask \\\n  ==3.1.3\n# -r nope.txt\nx  # -r no\n"
    )
    assert [(i.line, i.option, i.path) for i in includes("req/main.txt", text)] == [
        (1, "-r", "req/one.txt"),
        (2, "-c", "req/two.txt"),
        (3, "--requirement", "req/three.txt"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-r missing.txt", r"requirements.txt:2: -r missing.txt: missing.txt does not exist \(includes"),
        ("-r ../outside.txt", r"requirements.txt:2: -r ../outside.txt: points outside the project"),
        ("-c /etc/constraints.txt", r"requirements.txt:2: -c /etc/constraints.txt: an absolute path"),
        ("-r https://example.com/r.txt", r"requirements.txt:2: .*a URL cannot be shipped"),
    ],
)
def test_bad_includes_name_file_line_and_reason(line: str, message: str) -> None:
    files = {"requirements.txt": f"Flask==3.1.3\n{line}\n".encode()}
    with pytest.raises(RequirementsError, match=message):
        resolve("requirements.txt", reader(files))


def test_pyproject_dependencies_become_the_requirement_list() -> None:
    found = resolve("pyproject.toml", reader({"pyproject.toml": PYPROJECT}))
    assert found.generated == b"Flask==3.1.3\ngunicorn==27.0.1 ; sys_platform == 'linux'\n"
    assert found.install_file == "requirements.txt"
    # Only the dependency list keys the venv: a new version number reuses it.
    bumped = PYPROJECT.replace(b'version = "1.0"', b'version = "1.1"')
    assert resolve("pyproject.toml", reader({"pyproject.toml": bumped})).key == found.key


POETRY = b"""\
[tool.poetry]
name = "fastapi-skeleton"

[tool.poetry.dependencies]
python = "^3.11"
fastapi = "^0.109.1"
numpy = "~1.26"
uvicorn = {version = "^0.25.0", extras = ["standard"]}
colorama = {version = "*", markers = "sys_platform == 'win32'"}
psycopg2 = {version = "^2.9", optional = true}

[tool.poetry.group.dev.dependencies]
pytest = "^7.4.3"
"""
POETRY_LOCK = b"""\
[[package]]
name = "fastapi"
version = "0.109.1"

[[package]]
name = "numpy"
version = "1.26.2"

[[package]]
name = "pytest"
version = "7.4.3"
"""


def test_a_poetry_project_installs_its_main_dependencies_pinned_to_its_lock() -> None:
    """fastapi-ml-skeleton: no [project] table, its dependencies in [tool.poetry.dependencies] and a
    poetry.lock; push stopped with 'has no [project] table' where init had written app.requirements:
    pyproject.toml. Locked versions pin, Poetry's ^ and ~ become ranges, dev groups, `python` and optional
    dependencies stay out, extras and markers stay in."""
    files = {"pyproject.toml": POETRY, "poetry.lock": POETRY_LOCK}
    assert resolve("pyproject.toml", reader(files)).generated == (
        b"fastapi==0.109.1\nnumpy==1.26.2\nuvicorn[standard]>=0.25.0,<0.26.0\n"
        b"colorama; sys_platform == 'win32'\n"
    )
    unlocked = resolve("pyproject.toml", reader({"pyproject.toml": POETRY})).generated
    assert unlocked is not None and unlocked.startswith(b"fastapi>=0.109.1,<0.110.0\nnumpy>=1.26,<1.27\n")
    git = POETRY + b'\n[tool.poetry.dependencies.mylib]\ngit = "https://example.com/mylib.git"\n'
    with pytest.raises(RequirementsError, match=r"mylib is a git dependency, which deploy does not install"):
        resolve("pyproject.toml", reader({"pyproject.toml": git}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[project\nname = 1\n", r"pyproject.toml: not valid TOML: .*line 1"),
        (b"[tool.poetry]\nname = 'x'\n", r"pyproject.toml: has no \[project\] table"),
        (b"[project]\nname = 'x'\ndynamic = ['dependencies']\n", r"dependencies is dynamic"),
        (b"[project]\nname = 'x'\ndependencies = 'flask'\n", r"must be a list of strings"),
        (b"\xff\xfe[project]\n", r"pyproject.toml: not UTF-8 text"),
    ],
)
def test_unreadable_pyproject_is_a_clear_error(content: bytes, message: str) -> None:
    with pytest.raises(RequirementsError, match=message):
        resolve("pyproject.toml", reader({"pyproject.toml": content}))


def test_artifact_reports_requirement_errors_as_artifact_errors() -> None:
    files = {"requirements.txt": FileEntry(b"-r nowhere.txt\n")}
    artifact = Artifact("a" * 40, False, files, "requirements.txt")
    with pytest.raises(ArtifactError, match=r"requirements.txt:1: -r nowhere.txt: nowhere.txt does not"):
        _ = artifact.requirements


def test_pack_stops_on_a_missing_include_before_any_host(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("-r requirements/prod.txt\n")
    (tmp_path / "app.py").write_text("app = None\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )
    with pytest.raises(ArtifactError, match=r"requirements.txt:1: -r requirements/prod.txt: .* does not"):
        pack(tmp_path, "requirements.txt")


def test_pip_that_cannot_read_the_file_is_not_called_a_missing_wheel(tmp_path: Path) -> None:
    found = resolve("requirements.txt", reader({"requirements.txt": b"[project]\nname = 'x'\n"}))
    with pytest.raises(ArtifactError) as error:
        wheelhouse(found, Platform("3.11.2", "x86_64", "glibc", "2.36"), tmp_path)
    message = str(error.value)
    assert message.startswith("pip cannot read requirements.txt")
    assert "Invalid requirement" in message and "binary wheel" not in message
    assert str(tmp_path) not in message  # names the project's file, not the cache copy


def test_venv_key_of_an_include_change_differs() -> None:
    one = resolve("r.txt", reader({"r.txt": b"-c c.txt\nflask\n", "c.txt": b"flask==3.1.3\n"}))
    two = resolve("r.txt", reader({"r.txt": b"-c c.txt\nflask\n", "c.txt": b"flask==3.1.2\n"}))
    tag = "cp311-glibc2.36-x86_64"
    assert requirements_hash(one.key, "3.11.2", tag) != requirements_hash(two.key, "3.11.2", tag)


def test_src_layout_is_found_from_the_wsgi_module() -> None:
    flat = {"flaskr/__init__.py", "pyproject.toml"}
    src = {"src/flaskr/__init__.py", "pyproject.toml"}
    assert src_root(frozenset(flat), "flaskr:create_app()") is None
    assert src_root(frozenset(src), "flaskr:create_app()") == "src"
    assert src_root(frozenset({"src/wsgi.py"}), "wsgi:app") == "src"
    assert src_root(frozenset({"wsgi.py", "src/wsgi.py"}), "wsgi:app") is None


# --- the Dockerfile ------------------------------------------------------------------------------

YAML = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  requirements: {requirements}
server:
  domains: [shop.example.com]
  hosts: [web1]
  tls: false
"""


def build_stage(requirements: str, project: Path | None) -> list[str]:
    dockerfile = render(load_text(YAML.format(requirements=requirements)), project_dir=project)["Dockerfile"]
    build = dockerfile.split(" AS build\n", 1)[1].split(" AS runtime\n", 1)[0]
    return [line for line in build.splitlines() if line and not line.startswith("#")]


def test_dockerfile_copies_every_included_file_in_the_project_layout(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements.txt").write_text("-r requirements/prod.txt\n-c constraints.txt\n")
    (tmp_path / "requirements" / "prod.txt").write_text("gunicorn==27.0.1\n")
    (tmp_path / "constraints.txt").write_text("Flask==3.1.3\n")
    lines = build_stage("requirements.txt", tmp_path)
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies == [
        "COPY requirements.txt /tmp/requirements/requirements.txt",
        "COPY constraints.txt /tmp/requirements/constraints.txt",
        "COPY requirements/prod.txt /tmp/requirements/requirements/prod.txt",
    ]
    assert "RUN pip install --no-cache-dir -r /tmp/requirements/requirements.txt \\" in lines


def test_dockerfile_without_includes_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("gunicorn==27.0.1\n")
    lines = build_stage("requirements.txt", tmp_path)
    assert "COPY requirements.txt /tmp/requirements.txt" in lines
    assert "RUN pip install --no-cache-dir -r /tmp/requirements.txt \\" in lines


def test_dockerfile_installs_pyproject_dependencies(tmp_path: Path) -> None:
    lines = build_stage("pyproject.toml", tmp_path)
    assert "COPY pyproject.toml /tmp/pyproject.toml" in lines
    run = next(line for line in lines if line.startswith("RUN python -c"))
    assert "tomllib" in run and run.endswith("> /tmp/requirements.txt \\")
    assert "    && pip install --no-cache-dir -r /tmp/requirements.txt \\" in lines
    # The program that turns [project].dependencies into the list works on the real file.
    program = run.split('"', 2)[1].replace("/tmp/pyproject.toml", str(tmp_path / "pyproject.toml"))
    (tmp_path / "pyproject.toml").write_bytes(PYPROJECT)
    out = subprocess.run(["python3", "-c", program], capture_output=True, text=True, check=True).stdout
    assert out == "Flask==3.1.3\ngunicorn==27.0.1 ; sys_platform == 'linux'\n"
