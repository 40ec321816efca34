"""app.shared_files: files kept across releases (a generated key, a SQLite file at the project root).

Config validation by meaning, the setup and push plans built from fixture host states, and the host
program that makes a shared file (run here for real, on this machine's file system).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.config.loader import ConfigError, load_text
from deploy.plan import Command
from deploy.push.plan_push import push_plan
from deploy.push.plan_setup import setup_plan
from deploy.remote import commands as cmd
from deploy.remote.executor import display_line
from deploy.render.render import render
from tests.unit.push.test_plans import SECRETS, build, lines, states

pytestmark = pytest.mark.unit

YAML = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  secrets: [SECRET_KEY]
  shared: [instance]
  shared_files: [secret.key, data/app.db]
server:
  domains: [shop.example.com]
  hosts: [web1]
  user: shop
  tls: false
"""


def _problems(text: str, project_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, "deploy.yaml", None, project_dir)
    return [str(p) for p in caught.value.problems]


def test_shared_files_are_read_and_normalized() -> None:
    config = load_text(YAML.replace("data/app.db", "./data//app.db"))
    assert config.app.shared_files == ["secret.key", "data/app.db"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ("[.]", "is the release itself"),
        ("[.venv/x]", "the virtualenv"),
        ("[gunicorn.conf.py]", "deploy's own Gunicorn settings"),
        ("[requirements.txt]", "is app.requirements"),
        ("[shop/models.py]", "is code"),
        ("[shop]", "is code"),
        ("[instance/app.db]", "overlap"),
        ("[key, ./key]", "name the same file"),
        ("[data, data/app.db]", "a file cannot hold another"),
    ],
)
def test_shared_files_that_cannot_be_shared_by_name(files: str, expected: str) -> None:
    problems = _problems(YAML.replace("[secret.key, data/app.db]", files))
    assert any("app.shared_files[" in p and expected in p for p in problems), problems
    assert all(p.startswith("deploy.yaml:6:") for p in problems), problems


def test_a_shared_folder_named_like_deploys_file_store_is_refused() -> None:
    problems = _problems(YAML.replace("shared: [instance]", "shared: [.files]"))
    assert any("app.shared[0]" in p and "app.shared_files" in p for p in problems), problems


def test_a_committed_file_or_a_folder_is_never_a_shared_file(tmp_path: Path) -> None:
    """A committed file would be replaced by the shared (empty) copy in every release: refused; a file
    git ignores (a local database) is fine."""
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "models.bin").write_bytes(b"model")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("x", encoding="utf-8")
    (tmp_path / ".gitignore").write_text("app.db\n", encoding="utf-8")
    (tmp_path / "app.db").write_bytes(b"local")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    problems = _problems(YAML.replace("[secret.key, data/app.db]", "[models.bin, data, app.db]"), tmp_path)
    assert any("app.shared_files[0]" in p and "is committed in the project" in p for p in problems), problems
    assert any("app.shared_files[1]" in p and "is a folder in the project" in p for p in problems), problems
    assert not any("app.shared_files[2]" in p for p in problems), problems
    config = load_text(YAML.replace("[secret.key, data/app.db]", "[app.db]"), "deploy.yaml", None, tmp_path)
    assert config.app.shared_files == ["app.db"]


def test_setup_makes_the_file_store_and_each_file_once() -> None:
    config = load_text(YAML)
    hosts = states()
    rendered = {h: render(config, s.facts) for h, s in hosts.items()}
    plan = setup_plan(config, hosts, rendered, SECRETS)
    shown = lines(plan.steps)
    for folder in ("/srv/shop/shared/.files", "/srv/shop/shared/.files/data"):
        assert any(line.endswith(f"dir {folder} shop shop 0750") for line in shown), shown
    files = [s for s in plan.steps if s.name == "shared files"]
    assert len(files) == 1
    made = [display_line(a) for a in files[0].actions if isinstance(a, Command)]
    assert [m.split("' ", 1)[1] for m in made] == [
        "file /srv/shop/shared/.files/secret.key shop shop 0600",
        "file /srv/shop/shared/.files/data/app.db shop shop 0600",
    ]
    # A host where both files exist with the right owner and mode gets no shared-files step.
    owned = {"owner": "shop", "group": "shop", "mode": 0o600, "kind": "file"}
    done = {
        h: replace(
            s,
            owners={
                **s.owners,
                **{f"/srv/shop/shared/.files/{n}": owned for n in ("secret.key", "data/app.db")},
            },
        )
        for h, s in hosts.items()
    }
    assert not [s for s in setup_plan(config, done, rendered, SECRETS).steps if s.name == "shared files"]


def test_push_links_each_shared_file_into_the_release() -> None:
    config = load_text(YAML)
    hosts = states()
    rendered = {h: render(config, s.facts) for h, s in hosts.items()}
    (web1,) = push_plan(config, hosts, rendered, SECRETS, build()).hosts
    release = "/srv/shop/releases/20250101-000000-aaaaaaa"
    prepare = lines(web1.prepare)
    tail = [line.split("' ", 1)[-1] for line in prepare]
    removal = next(i for i, t in enumerate(tail) if t == f"rm {release} secret.key data/app.db")
    for name in ("secret.key", "data/app.db"):
        made = tail.index(f"file /srv/shop/shared/.files/{name} shop shop 0600")
        link = next(
            i for i, line in enumerate(prepare) if f"/srv/shop/shared/.files/{name} {release}/{name}" in line
        )
        assert removal < made < link, prepare
    assert f"dir {release}/data root root 0755" in tail


def _run(path: Path, mode: str = "0600") -> subprocess.CompletedProcess[str]:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = __import__("grp").getgrgid(os.getgid()).gr_name
    argv = cmd.make_file(str(path), user, group).argv
    argv = (*argv[:-1], mode)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_the_host_program_makes_an_empty_file_once_and_never_empties_it(tmp_path: Path) -> None:
    target = tmp_path / "app.db"
    assert _run(target).returncode == 0
    assert target.read_bytes() == b"" and (target.stat().st_mode & 0o777) == 0o600
    target.write_bytes(b"kept")
    target.chmod(0o644)
    assert _run(target).returncode == 0
    assert target.read_bytes() == b"kept" and (target.stat().st_mode & 0o777) == 0o600


def test_the_host_program_never_follows_a_link_or_a_hard_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's", encoding="utf-8")
    victim.chmod(0o644)
    (tmp_path / "link").symlink_to(victim)
    result = _run(tmp_path / "link")
    assert result.returncode == 73 and "deploy: refused:" in result.stdout, result
    os.link(victim, tmp_path / "hard")
    result = _run(tmp_path / "hard")
    assert result.returncode == 73 and "hard link" in result.stdout, result
    assert (victim.stat().st_mode & 0o777) == 0o644 and victim.read_text(encoding="utf-8") == "root's"


def test_pit006_takes_a_shared_file_as_kept_and_advises_it(tmp_path: Path) -> None:
    """A SQLite file at the project root is lost on every push unless shared: PIT006 fires and names
    app.shared_files; listed there, the file is kept and PIT006 is silent."""
    from tests.unit.checks.support import CONFIG, check, found, imported_by_app, project

    files: dict[str, str | None] = imported_by_app(
        {"db.py": "import sqlite3\n\n\ndef connect():\n    return sqlite3.connect('app.db')\n"}
    )
    root = project(tmp_path / "a", files)
    result = found(check(root, ["PIT006"], config=CONFIG))
    assert "app.shared_files" in " ".join(result.get("PIT006", [])), result
    shared = CONFIG.replace(
        "  secrets: [SECRET_KEY]\n", "  secrets: [SECRET_KEY]\n  shared_files: [app.db]\n"
    )
    assert shared != CONFIG
    root = project(tmp_path / "b", files)
    assert "PIT006" not in found(check(root, ["PIT006"], config=shared))


def test_the_next_push_drops_the_copied_links_to_shared_files_first() -> None:
    """`cp -al` copies the previous release's links to the shared files: they go before anything is
    unpacked, so no shipped file can be written through one into the persistent file."""
    from tests.unit.push.test_plans import served_state

    config = load_text(YAML)
    hosts = served_state()
    rendered = {h: render(config, s.facts) for h, s in hosts.items()}
    plan = push_plan(config, hosts, rendered, SECRETS, build(code=b"print('v2')\n"))
    shown = lines(plan.hosts[0].prepare)
    copy = next(i for i, line in enumerate(shown) if " cp -al -- " in line)
    target = "/srv/shop/releases/20250101-000000-aaaaaaa"
    assert shown[copy + 1].endswith(f" rm {target} .deploy .venv data/app.db instance secret.key"), shown[
        copy + 1
    ]
