"""Checks of the app's database: migrations against the models, connections against Postgres."""

from __future__ import annotations

from collections.abc import Iterator

from deploy.checker import Context, Finding, check
from deploy.project.migrations import (
    heads,
    in_versions,
    parse_migrations,
    read_migrations,
    still_used,
    uses,
    version_dirs,
)
from deploy.project.pools import budget

from ._helpers import config_file


@check(
    "PIT010",
    area="pitfalls",
    severity="high",
    title="The newest migration drops or renames what the code still uses",
    why="""`flask db upgrade` (the release command) runs before the new release serves. A migration that
    drops or renames a column or table the models still map leaves the app querying something that is
    gone: every page that loads the model fails with `UndefinedColumn`/`UndefinedTable`, in the old
    release and in the new one.""",
    fix="""Expand/contract: first ship the code that stops using the column or table (remove it from the
    model, or map the new name with `db.Column("old_name", ...)` during a rename), and drop or rename it
    in a migration of a later release, once no running release uses it. If the model is right and the
    migration is wrong, fix the migration.""",
    layers=("source",),
    details="""
    What it reads: the Alembic revision files (Flask-Migrate's `migrations/versions/`, `alembic/versions/`,
    the `versions/` folder of alembic.ini's `script_location`), parsed with `ast`. The newest revisions
    (the heads: no other revision names them as `down_revision`) are looked at, in their `upgrade()`:
    `op.drop_column`, `op.drop_table`, `op.alter_column(..., new_column_name=...)`, `op.rename_table`,
    the same operations on `batch_alter_table`'s `batch_op`, and `op.execute()` with `DROP TABLE`,
    `ALTER TABLE ... DROP COLUMN`, `RENAME COLUMN` or `RENAME TO`. A column dropped and added again in
    the same upgrade (a type change) does not count.

    What counts as a use: a model class mapped to the table (`__tablename__`, or Flask-SQLAlchemy's
    name made from the class name: `UserRole` is `user_role`), its `db.Column`/`mapped_column`/
    `Mapped[...]` attributes (a column's own name when it is given: `db.Column("email_address", ...)`),
    and `db.Table("name", db.Column("c", ...))`.

    `deploy push` goes further: it warns about every migration new in the push that drops or renames
    anything (the running release was written for the old schema), and refuses this case.""",
    references=(
        "https://alembic.sqlalchemy.org/en/latest/ops.html",
        "https://www.prisma.io/dataguide/types/relational/expand-and-contract-pattern",
    ),
)
def migration_drops_what_the_code_uses(ctx: Context) -> Iterator[Finding]:
    files = read_migrations(ctx.root)
    if not files:
        return
    dirs = version_dirs(files)
    found = uses(m for m in ctx.project.python if not in_versions(m.path, dirs))
    for migration in heads(parse_migrations(files)):
        for removal in migration.removals:
            used = still_used(removal, found)
            if used:
                first = used[0]
                more = f" (and {len(used) - 1} more)" if len(used) > 1 else ""
                yield Finding(
                    f"{removal.op} {removal.verb}, which the code still uses: {first.where} "
                    f"({first.file}:{first.line}){more}",
                    removal.file,
                    removal.line,
                )


@check(
    "XL034",
    area="performance",
    severity="medium",
    title="More database connections than Postgres allows",
    why="""Each Gunicorn worker keeps its own SQLAlchemy pool, and so does every other process. When
    together they can open more connections than Postgres's `max_connections` (minus the 3 it keeps
    for superusers), the last ones fail with `FATAL: sorry, too many clients already`: requests fail
    under load, and during a push, when the old and the new release run side by side, the new release
    may not pass its health check.""",
    fix="""Raise `services.postgres.max_connections` (each connection costs memory; deploy lowers work_mem
    to fit), or lower what the app holds: fewer `gunicorn.workers`/`threads`, a smaller pool
    (`SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 2, "max_overflow": 2}`), fewer process instances.""",
    layers=("source", "config"),
    details="""
    How it counts, at the peak of a push: web hosts × Gunicorn workers × connections per worker × 2
    (the old and the new release both run until the switch), plus each process's hosts × instances ×
    its connections (Celery's `--concurrency`/`-c`, default the cores; `-w`/`--workers`; else 1), one
    per job, one for the backup and one for the release command. A worker holds at most
    min(its concurrency, pool_size + max_overflow): a sync worker one, a gthread worker one per thread,
    an async worker (gevent, eventlet, ASGI) up to its pool (NullPool: no limit). The pool is read from
    the source: a dict or call naming `pool_size`, `max_overflow` or `poolclass`
    (`SQLALCHEMY_ENGINE_OPTIONS`, `create_engine()`, `SQLAlchemy(engine_options=...)`), else SQLAlchemy's
    defaults 5 + 10. With `gunicorn.workers: auto` and no `server.cores`, a 1-core host (3 workers) is
    assumed and the count is a lower bound. `deploy setup` and `deploy push` print the same warning.""",
    references=(
        "https://www.postgresql.org/docs/15/runtime-config-connection.html#GUC-MAX-CONNECTIONS",
        "https://docs.sqlalchemy.org/en/20/core/pooling.html",
    ),
)
def connection_budget(ctx: Context) -> Iterator[Finding]:
    from deploy.config.loader import line_of

    assert ctx.config is not None
    found = budget(ctx.config, ctx.project.python)
    if found is None or not found.over:
        return
    file = config_file(ctx)
    line, _ = line_of(ctx.root / file, ctx.environment, ("services", "postgres", "max_connections"))
    if line is None:
        line, _ = line_of(ctx.root / file, ctx.environment, ("services", "postgres"))
    yield Finding(found.message(), file, line)


#: Drivers SQLAlchemy opens a plain `postgresql://` URL without: (distribution, the scheme naming it).
_OTHER_DRIVERS = (
    ("psycopg", "postgresql+psycopg"),
    ("psycopg-binary", "postgresql+psycopg"),
    ("pg8000", "postgresql+pg8000"),
    ("asyncpg", "postgresql+asyncpg"),
)


@check(
    "XL036",
    area="deployment",
    severity="high",
    title="The database URL deploy gives names a driver the app does not have",
    why="""`services: postgres` hands the app `DATABASE_URL` as `postgresql://...`, and SQLAlchemy opens a
    URL without a driver with psycopg2. An app that requires psycopg 3 (or pg8000, asyncpg) and not
    psycopg2 fails at start, on every host: `ModuleNotFoundError: No module named 'psycopg2'`, and the
    push fails its health gate.""",
    fix="""Name the driver where the app reads the URL:
    `os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)`; or require
    psycopg2-binary.""",
    layers=("source", "config"),
    details="""Reported at the database setting (`SQLALCHEMY_DATABASE_URI`, `DATABASE_URL`) that reads
    the variable `services.postgres.env` names, when the statement names no driver itself
    (`postgresql+...`), the project requires SQLAlchemy, one of psycopg (3), pg8000 or asyncpg, and
    neither psycopg2 nor psycopg2-binary.""",
    references=(
        "https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#dialect-postgresql-psycopg-connect",
        "https://docs.sqlalchemy.org/en/20/core/engines.html#postgresql",
    ),
)
def service_url_driver(ctx: Context) -> Iterator[Finding]:
    postgres = ctx.config.services.postgres if ctx.config is not None else None
    project = ctx.project
    if postgres is None or project.depends_on("psycopg2", "psycopg2-binary"):
        return
    driver = next(((d, scheme) for d, scheme in _OTHER_DRIVERS if project.depends_on(d)), None)
    if driver is None or not (
        project.depends_on("sqlalchemy", "flask-sqlalchemy") or project.uses("sqlalchemy")
    ):
        return
    texts = {m.path: m.text.splitlines() for m in project.python}
    for key in ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL"):
        for s in project.setting(key):
            lines = texts.get(s.file, [])
            statement = " ".join(lines[s.line - 1 : s.line + 2])
            if s.value.kind != "env" or s.value.env_name != postgres.env or "postgresql+" in statement:
                continue
            yield Finding(
                f"{key} reads {postgres.env}, which services.postgres gives as postgresql://..., a URL "
                f"SQLAlchemy opens with psycopg2; the requirements have {driver[0]}, not psycopg2: the app "
                f"fails at start (read it as {driver[1]}://)",
                s.file,
                s.line,
            )
