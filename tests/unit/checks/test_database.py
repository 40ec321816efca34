"""PIT010 (the newest migration drops or renames what the models use) and XL034 (the connection budget),
on Flask-SQLAlchemy + Flask-Migrate fixture projects; and the Alembic operations they are read from."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.config.model import Config
from deploy.project.migrations import heads, parse_migrations, snake_case, still_used, uses, version_dirs
from deploy.project.pools import budget, pool
from deploy.project.scan import from_files
from tests.unit.checks.support import check, found, project

pytestmark = pytest.mark.unit

MODELS = """\
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column("email_address", db.String(200))
    nickname = db.Column(db.String(80))


class BlogPost(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author = db.relationship("User")


class Admin(User):
    level = db.Column(db.Integer)


tags = db.Table("post_tag", db.Column("post_id", db.Integer), db.Column("tag", db.String))
"""

APP = """\
import os

from flask import Flask
from flask_migrate import Migrate

from models import db

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db.init_app(app)
Migrate(app, db)
"""


def revision(rev: str, down: str | None, body: str) -> str:
    down_text = repr(down)
    return (
        f'"""{rev}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {rev!r}\ndown_revision = {down_text}\n\n\n"
        f"def upgrade():\n{body}\n\n\ndef downgrade():\n    op.drop_table('user')\n"
    )


def removals(body: str) -> list[str]:
    [migration] = parse_migrations({"migrations/versions/b.py": revision("b", "a", body)})
    return [f"{r.line} {r.op}: {r.verb}" for r in migration.removals]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    op.drop_column('user', 'nickname')", ["10 op.drop_column: drops column user.nickname"]),
        (
            "    op.drop_column(table_name='user', column_name='nickname')",
            ["10 op.drop_column: drops column user.nickname"],
        ),
        ("    op.drop_table('user')", ["10 op.drop_table: drops table user"]),
        ("    op.rename_table('user', 'account')", ["10 op.rename_table: renames table user to account"]),
        (
            "    op.alter_column('user', 'nickname', new_column_name='handle')",
            ["10 op.alter_column(new_column_name=): renames column user.nickname to handle"],
        ),
        ("    op.alter_column('user', 'nickname', nullable=True)", []),
        (
            "    with op.batch_alter_table('user', schema=None) as batch_op:\n"
            "        batch_op.drop_column('nickname')\n"
            "        batch_op.alter_column('email', new_column_name='mail')",
            [
                "11 batch_op.drop_column: drops column user.nickname",
                "12 batch_op.alter_column(new_column_name=): renames column user.email to mail",
            ],
        ),
        (
            '    op.execute("ALTER TABLE \\"user\\" DROP COLUMN IF EXISTS nickname")',
            ["10 op.execute(DROP COLUMN): drops column user.nickname"],
        ),
        (
            "    op.execute(sa.text('DROP TABLE IF EXISTS old_log'))",
            ["10 op.execute(DROP TABLE): drops table old_log"],
        ),
        (
            "    op.execute('ALTER TABLE user RENAME COLUMN nickname TO handle')",
            ["10 op.execute(RENAME COLUMN): renames column user.nickname to handle"],
        ),
        (
            "    op.execute('ALTER TABLE user RENAME TO account')",
            ["10 op.execute(RENAME TO): renames table user to account"],
        ),
        ("    op.execute('ALTER TABLE user DROP CONSTRAINT user_pkey')", []),
        ("    op.execute('UPDATE user SET nickname = NULL')", []),
        # A type change by drop and add: the column is still there afterwards.
        ("    op.drop_column('user', 'age')\n    op.add_column('user', sa.Column('age', sa.Text()))", []),
        ("    op.add_column('user', sa.Column('age', sa.Integer()))", []),
    ],
)
def test_the_operations_an_upgrade_drops_or_renames_with(body: str, expected: list[str]) -> None:
    assert removals(body) == expected


def test_the_newest_revisions_are_the_heads_even_after_a_merge() -> None:
    migrations = parse_migrations(
        {
            "v/a.py": revision("a", None, "    pass"),
            "v/b.py": revision("b", "a", "    pass"),
            "v/c.py": revision("c", "a", "    pass"),
            "v/d.py": 'revision = "d"\ndown_revision = ("b", "c")\n',
            "v/e.py": revision("e", "d", "    pass"),
        }
    )
    assert [m.revision for m in heads(migrations)] == ["e"]
    assert [m.revision for m in heads(migrations[:3])] == ["b", "c"]


def test_the_folders_of_revisions() -> None:
    paths = [
        "migrations/versions/a.py",
        "db/versions/b.py",
        "db/env.py",
        "src/versions/c.py",
        ".venv/x/versions/d.py",
    ]
    assert version_dirs(paths) == {"migrations/versions", "db/versions"}
    ini = {"alembic.ini": "[alembic]\nscript_location = %(here)s/schema\n"}
    assert version_dirs([], ini) == {"schema/versions"}


def test_what_the_models_map() -> None:
    found = uses(from_files(Path("/p"), {"models.py": MODELS}).python)
    mapped = {(u.table, u.column, u.where) for u in found}
    assert ("user", "email_address", "User.email") in mapped
    assert ("user", "nickname", "User.nickname") in mapped
    assert ("blog_post", None, "model BlogPost") in mapped
    assert ("blog_post", "title", "BlogPost.title") in mapped
    assert ("user", "level", "Admin.level") in mapped  # single-table inheritance: the parent's table
    assert ("post_tag", "tag", "Table('post_tag') column tag") in mapped
    assert not any(u.column == "author" for u in found)  # a relationship is no column
    assert snake_case("HTTPRequestLog") == "http_request_log"
    [removal] = parse_migrations({"v/b.py": revision("b", "a", "    op.drop_column('user', 'email')")})[
        0
    ].removals
    assert still_used(removal, found) == []  # the column is email_address; `email` is the attribute


def run_pit010(tmp_path: Path, migrations: dict[str, str], models: str = MODELS) -> list[str]:
    root = project(tmp_path, {"app.py": APP, "models.py": models, **migrations}, base=False)
    return found(check(root, ["PIT010"])).get("PIT010", [])


def test_pit010_the_newest_migration_drops_a_column_a_model_maps(tmp_path: Path) -> None:
    messages = run_pit010(
        tmp_path,
        {
            "migrations/env.py": "",
            "migrations/versions/a1_init.py": revision("a1", None, "    op.drop_table('old_log')"),
            "migrations/versions/b2_drop.py": revision("b2", "a1", "    op.drop_column('user', 'nickname')"),
        },
    )
    assert messages == [
        "migrations/versions/b2_drop.py:10 op.drop_column drops column user.nickname, which the code "
        "still uses: User.nickname (models.py:10)"
    ]


def test_pit010_renames_and_tables_and_alembic_ini(tmp_path: Path) -> None:
    body = (
        "    op.rename_table('blog_post', 'post')\n"
        "    op.alter_column('user', 'email_address', new_column_name='email')"
    )
    messages = run_pit010(
        tmp_path,
        {
            "alembic.ini": "[alembic]\nscript_location = db\n",
            "db/versions/c3.py": revision("c3", None, body),
        },
    )
    assert messages == [
        "db/versions/c3.py:10 op.rename_table renames table blog_post to post, which the code still uses: "
        "model BlogPost (models.py:13)",
        "db/versions/c3.py:11 op.alter_column(new_column_name=) renames column user.email_address to email, "
        "which the code still uses: User.email (models.py:9)",
    ]


def test_pit010_passes_when_the_code_stopped_using_it_or_an_older_migration_dropped_it(
    tmp_path: Path,
) -> None:
    without = MODELS.replace("    nickname = db.Column(db.String(80))\n", "")
    assert (
        run_pit010(
            tmp_path / "a",
            {"migrations/versions/b2.py": revision("b2", None, "    op.drop_column('user', 'nickname')")},
            without,
        )
        == []
    )
    # An older revision's drop was followed by a newer one: only the heads are looked at.
    assert (
        run_pit010(
            tmp_path / "b",
            {
                "migrations/versions/a1.py": revision("a1", None, "    op.drop_column('user', 'nickname')"),
                "migrations/versions/b2.py": revision(
                    "b2", "a1", "    op.add_column('user', sa.Column('nickname'))"
                ),
            },
        )
        == []
    )


# --- XL034 ---------------------------------------------------------------------------------------

CONFIG = """\
app: {name: shop, wsgi: "app:app", release: ["flask db upgrade"]}
server:
  {domains: [shop.example.com], tls: {email: ops@example.com}, hosts: [10.0.0.1, 10.0.0.2], cores: CORES}
gunicorn: GUNICORN
services: {postgres: POSTGRES}
"""


def config(
    gunicorn: str = "{workers: 5}", postgres: str = "{max_connections: 40}", more: str = "", cores: int = 2
) -> Config:
    text = CONFIG.replace("GUNICORN", gunicorn).replace("POSTGRES", postgres).replace("CORES", str(cores))
    return load_text(text + more, "deploy.yaml")


def modules(source: str = APP):  # type: ignore[no-untyped-def]
    return from_files(Path("/p"), {"app.py": source}).python


def test_a_sync_worker_holds_one_connection_a_gthread_worker_one_per_thread_up_to_its_pool() -> None:
    sync = budget(config(), modules())
    assert sync is not None and sync.terms == [
        (
            "2 web host(s) × 5 workers × 1 connection (sync, one request at a time; "
            "SQLAlchemy's default pool 5+10) × 2 releases",
            20,
        ),
        ("release command", 1),
    ]
    assert not sync.over and sync.available == 37
    threads = budget(config("{workers: 5, worker_class: gthread, threads: 32}"), modules())
    assert threads is not None and threads.terms[0][1] == 2 * 5 * 15 * 2 and threads.over
    small = APP + 'app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}\n'
    capped = budget(config("{workers: 5, worker_class: gthread, threads: 32}"), modules(small))
    assert capped is not None and capped.terms[0][1] == 2 * 5 * 1 * 2 and not capped.over


def test_the_pool_the_code_sets() -> None:
    engine = (
        "from sqlalchemy import create_engine\nengine = create_engine(URL, pool_size=3, max_overflow=-1)\n"
    )
    assert (pool(modules(engine)).size, pool(modules(engine)).cap) == (3, 3)
    null = "from sqlalchemy.pool import NullPool\nOPTIONS = {'poolclass': NullPool}\n"
    assert pool(modules(null)).null and pool(modules(null)).cap is None
    assert pool(modules()).cap == 15


def test_processes_jobs_and_backups_count_too() -> None:
    more = (
        "processes:\n  worker: {command: celery -A app.celery worker -c 4, instances: 2}\n"
        "  rq: {command: rq worker, hosts: first}\n"
        "jobs:\n  purge: {command: flask purge, schedule: daily, hosts: all}\n"
    )
    found = budget(config(postgres="{max_connections: 40, backups: {schedule: daily}}", more=more), modules())
    assert found is not None
    assert found.terms[1:] == [
        ("rq: 1 host(s) × 1 × 1", 1),
        ("worker: 2 host(s) × 2 × 4", 16),
        ("jobs", 2),
        ("backup", 1),
        ("release command", 1),
    ]
    assert found.total == 41 and found.over
    assert "41 connections at the peak of a push" in found.message()
    assert "> services.postgres.max_connections 40 − 3 reserved for superusers = 37" in found.message()


def test_nullpool_behind_async_workers_has_no_bound_and_auto_workers_are_a_lower_bound() -> None:
    null = "from sqlalchemy.pool import NullPool\nOPTIONS = {'poolclass': NullPool}\n"
    unbounded = budget(config("{worker_class: gevent}"), modules(null))
    assert (
        unbounded is not None and unbounded.over and "NullPool behind gevent workers" in unbounded.message()
    )
    auto = budget(
        load_text(
            CONFIG.replace("GUNICORN", "{}").replace("POSTGRES", "{}").replace(", cores: CORES", ""), "d"
        ),
        modules(),
    )
    assert auto is not None and auto.at_least and auto.message().startswith("at least 13 connections")
    assert (
        budget(
            load_text(CONFIG.split("services")[0].replace("GUNICORN", "{}").replace("CORES", "2"), "d"),
            modules(),
        )
        is None
    )


def test_xl030_names_the_numbers_at_max_connections(tmp_path: Path) -> None:
    root = project(tmp_path, {"app.py": APP}, base=False)
    text = CONFIG.replace("GUNICORN", "{workers: 9, worker_class: gthread, threads: 4}").replace("CORES", "2")
    yaml = text.replace(
        "services: {postgres: POSTGRES}", "services:\n  postgres:\n    max_connections: 100\n"
    )
    (root / "deploy.yaml").write_text(yaml)
    [message] = found(check(root, ["XL034"], config=yaml))["XL034"]
    assert message.startswith(
        "deploy.yaml:7 145 connections at the peak of a push (2 web host(s) × 9 workers"
    )
    assert "> services.postgres.max_connections 100 − 3 reserved for superusers = 97" in message
    fits = yaml.replace("threads: 4", "threads: 2")
    assert "XL034" not in found(check(root, ["XL034"], config=fits))


def test_setup_warns_with_the_hosts_own_cores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deploy.cli.common import Printer
    from deploy.cli.push import _connection_budget
    from deploy.remote.facts import HostState

    root = project(tmp_path, {"app.py": APP}, base=False)
    text = CONFIG.replace("GUNICORN", "{worker_class: gthread, threads: 4}").replace(", cores: CORES", "")
    auto = load_text(text.replace("POSTGRES", "{max_connections: 60}"), "deploy.yaml")
    # 2 cores: 5 workers x 4 threads x 2 hosts x 2 releases = 80 (+ the release command) > 57.
    states = {h: HostState(h, cores=2) for h in ("10.0.0.1", "10.0.0.2")}
    _connection_budget(auto, root, states, Printer(False))
    out = capsys.readouterr().out
    assert "warning: Postgres connections: 81 connections at the peak of a push" in out
    assert "deploy explain XL034" in out
    # 1 core: 3 workers: 48 + 1 fits in 57.
    _connection_budget(auto, root, {h: HostState(h, cores=1) for h in states}, Printer(False))
    assert capsys.readouterr().out == ""


def test_read_migrations_finds_the_revision_folders_and_skips_virtualenvs(tmp_path: Path) -> None:
    from deploy.project.migrations import read_migrations

    files = {
        "app/migrations/versions/a1.py": "revision = 'a1'\n",
        "app/migrations/versions/README": "not a revision\n",
        "db/env.py": "",
        "db/versions/b2.py": "revision = 'b2'\n",
        ".venv/lib/alembic/versions/c3.py": "revision = 'c3'\n",
        "lib/versions/d4.py": "revision = 'd4'\n",  # a versions folder of no Alembic project
    }
    project(tmp_path, dict(files), base=False)
    assert sorted(read_migrations(tmp_path)) == ["app/migrations/versions/a1.py", "db/versions/b2.py"]


def test_the_message_says_what_max_connections_would_fit() -> None:
    found = budget(config("{workers: 5, worker_class: gthread, threads: 32}"), modules())
    assert found is not None and found.message().endswith("(max_connections: 304 would fit)")
    fits = budget(config(), modules())
    assert fits is not None and "would fit" not in fits.message()
