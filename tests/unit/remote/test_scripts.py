"""The programs deploy runs on the hosts are real files in deploy/remote/scripts/: ruff and mypy read
the Python ones (as part of deploy/), shellcheck the shell ones; the commands carry their exact text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.remote import commands as cmd
from deploy.remote import facts
from deploy.remote.scripts import script

SCRIPTS = Path(cmd.__file__).with_name("scripts")


@pytest.mark.unit
def test_every_host_program_is_a_file_of_the_package() -> None:
    assert {p.name for p in SCRIPTS.iterdir() if p.suffix in (".py", ".sh") and p.stem != "__init__"} == {
        "backup_store.py",
        "bytecode.py",
        "health_probe.py",
        "holder_check.sh",
        "live_probe.py",
        "lock_holder.sh",
        "nginx_apply.py",
        "postgres_apply.sh",
        "postgres_probe.sh",
        "pg_backup.py",
        "probe.py",
        "redis_backup.py",
        "redis_setup.sh",
        "process_ready.py",
        "safe_fs.py",
        "step_guard.sh",
    }
    assert (SCRIPTS / "probe.py").read_text(encoding="utf-8") == facts.PROBE
    assert script("step_guard.sh") == cmd.STEP_GUARD
    assert cmd.SAFE_FS in cmd.make_dir("/srv/app", "app", "app", 0o750).argv


@pytest.mark.unit
def test_the_python_host_programs_compile() -> None:
    for path in sorted(SCRIPTS.glob("*.py")):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


@pytest.mark.unit
def test_shellcheck_finds_nothing_in_the_shell_host_programs() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (.ci/setup installs it: apt-get install shellcheck)")
    files = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    out = subprocess.run([shellcheck, *files], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.unit
def test_prune_removes_empty_folders_bottom_up_and_never_follows_a_link(tmp_path: Path) -> None:
    """A new release starts as a copy of the previous one: the folders its deleted files left empty (an
    old .dist-info) go; a folder with a file stays; a link to a folder, and what it points to, stay."""
    import os

    if os.geteuid() != 0:
        pytest.skip("safe_fs only follows links that root made, and walks from / as root does")
    release, outside = tmp_path / "release", tmp_path / "outside"
    for folder in ("a/b", "app-1.0.dist-info", "c"):
        (release / folder).mkdir(parents=True)
    (release / "c" / "kept.py").write_text("")
    (outside / "empty").mkdir(parents=True)
    (release / "shared-link").symlink_to(outside)
    command = cmd.prune_empty_dirs(str(release))
    subprocess.run(command.argv, check=True, capture_output=True, timeout=30)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == [
        "outside",
        "outside/empty",
        "release",
        "release/c",
        "release/c/kept.py",
        "release/shared-link",
    ]


@pytest.mark.unit
def test_the_backup_programs_travel_with_the_shared_module_inline_and_run_alone(tmp_path: Path) -> None:
    """pg_backup.py and redis_backup.py share backup_store.py: the text that travels holds it in place
    of the import, so `python3 -I -c TEXT` (no package, no sys.path) lists a folder's backups."""
    import json
    import sys

    from deploy.push.backups import PG_BACKUP
    from deploy.push.redis_backups import REDIS_BACKUP
    from deploy.remote.scripts import host_program

    assert host_program("probe.py") == script("probe.py")  # the others travel as they are
    (tmp_path / "20261207T030000Z.dump").write_bytes(b"PGDMP")
    (tmp_path / "20261207T030000Z.rdb").write_bytes(b"REDIS0011")
    (tmp_path / "20261207T030000Z.json").write_text('{"status": "verified", "keys": 3}')
    for text, args, ext in (
        (PG_BACKUP, ["--database", "shop"], ".dump"),
        (REDIS_BACKUP, ["--app", "shop"], ".rdb"),
    ):
        assert "from .backup_store import" not in text and "def backup_records(" in text
        argv = [sys.executable, "-I", "-c", text, "list", "--dir", str(tmp_path), *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True, cwd="/")
        (record,) = json.loads(out.stdout)
        assert (record["stamp"], record["status"], record["path"]) == (
            "20261207T030000Z", "verified", str(tmp_path / f"20261207T030000Z{ext}"),
        )  # fmt: skip


@pytest.mark.unit
def test_a_backup_program_never_redefines_a_name_of_the_shared_module() -> None:
    """Inline, a program's own definition of a shared name would replace it for the shared functions too."""
    import ast

    def top_level(name: str) -> set[str]:
        tree = ast.parse(script(name))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        return names | {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }

    shared = top_level("backup_store.py")
    assert {"write_json", "read_json", "backup_records", "to_remove", "kept"} <= shared
    for program in ("pg_backup.py", "redis_backup.py"):
        assert top_level(program) & shared == set(), program
