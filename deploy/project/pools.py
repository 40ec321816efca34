"""The Postgres connection budget: how many connections the app's processes can hold at once (Gunicorn
workers on the web hosts, the other processes, jobs, backups, the release command) against
services.postgres.max_connections. The SQLAlchemy pool is read from the source with `ast`.

A process holds at most min(its concurrency, its pool's size + overflow) connections: a sync worker
serves one request at a time (one connection), a gthread worker one per thread, an async worker (gevent,
eventlet, ASGI) up to its pool's limit; NullPool keeps none idle but does not cap the concurrency.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from deploy.config import workers as worker_classes
from deploy.config.model import Config
from deploy.project.source import PythonFile

#: SQLAlchemy's QueuePool defaults (create_engine's pool_size and max_overflow).
POOL_SIZE, MAX_OVERFLOW = 5, 10
#: Postgres's superuser_reserved_connections default: slots ordinary roles never get.
SUPERUSER_RESERVED = 3
#: Gunicorn's worker_connections default: the most clients an async worker serves at once.
ASYNC_CONCURRENCY = 1000
_POOL_KEYS = {"pool_size", "max_overflow", "poolclass"}


@dataclass(frozen=True)
class Pool:
    """The SQLAlchemy pool the app configures (SQLALCHEMY_ENGINE_OPTIONS, create_engine, engine_options)."""

    size: int = POOL_SIZE
    overflow: int = MAX_OVERFLOW
    null: bool = False
    #: Where it is set (None: SQLAlchemy's defaults).
    file: str | None = None
    line: int | None = None

    @property
    def cap(self) -> int | None:
        """The most connections one process opens (None: NullPool, no limit)."""
        return None if self.null else self.size + max(self.overflow, 0)

    def describe(self) -> str:
        if self.null:
            return "NullPool"
        if self.file is None:
            return f"SQLAlchemy's default pool {self.size}+{self.overflow}"
        return f"pool {self.size}+{self.overflow} at {self.file}:{self.line}"


def _int(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int(node.operand)
        return -inner if inner is not None else None
    return None


def _pool_of(pairs: dict[str, ast.expr], file: str, line: int) -> Pool:
    poolclass = pairs.get("poolclass")
    null = poolclass is not None and ast.unparse(poolclass).rsplit(".", 1)[-1] == "NullPool"
    size, overflow = _int(pairs.get("pool_size")), _int(pairs.get("max_overflow"))
    return Pool(
        POOL_SIZE if size is None else size, MAX_OVERFLOW if overflow is None else overflow, null, file, line
    )


def pool(modules: Iterable[PythonFile]) -> Pool:
    """The pool the code sets: the last dict or call (create_engine, dict(...)) that names pool_size,
    max_overflow or poolclass; SQLAlchemy's defaults when none does."""
    found: list[Pool] = []
    for module in modules:
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            pairs: dict[str, ast.expr] = {}
            if isinstance(node, ast.Dict):
                pairs = {
                    k.value: v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
            elif isinstance(node, ast.Call):
                pairs = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            if pairs.keys() & _POOL_KEYS and isinstance(node, ast.expr):
                found.append(_pool_of(pairs, module.path, node.lineno))
    return found[-1] if found else Pool()


@dataclass
class Budget:
    """The connections the app may hold at the peak of a push, term by term, against what Postgres gives."""

    max_connections: int
    terms: list[tuple[str, int]] = field(default_factory=list)
    #: The count is a lower bound (worker count `auto` on hosts whose cores are unknown).
    at_least: bool = False
    #: Why no number can be given (NullPool behind async workers: nothing caps the connections).
    unbounded: str | None = None

    @property
    def available(self) -> int:
        return self.max_connections - SUPERUSER_RESERVED

    @property
    def total(self) -> int:
        return sum(n for _, n in self.terms)

    @property
    def over(self) -> bool:
        return self.unbounded is not None or self.total > self.available

    def message(self) -> str:
        limit = (
            f"services.postgres.max_connections {self.max_connections} − {SUPERUSER_RESERVED} reserved "
            f"for superusers = {self.available}"
        )
        if self.unbounded:
            return f"{self.unbounded}; Postgres allows {limit}"
        parts = " + ".join(f"{what} = {n}" if "×" in what else f"{what} {n}" for what, n in self.terms)
        sign = ">" if self.total > self.available else "≤"
        least = "at least " if self.at_least else ""
        text = f"{least}{self.total} connections at the peak of a push ({parts}) {sign} {limit}"
        if self.total > self.available:
            text += f" (max_connections: {self.total + SUPERUSER_RESERVED} would fit)"
        return text


def _concurrency(config: Config) -> tuple[int, str]:
    gunicorn = config.gunicorn
    if worker_classes.worker(gunicorn.worker_class).concurrent:
        return ASYNC_CONCURRENCY, f"{gunicorn.worker_class} worker"
    if gunicorn.worker_class == "gthread":
        return gunicorn.threads, f"gthread, {gunicorn.threads} threads"
    return 1, f"{gunicorn.worker_class}, one request at a time"


def _process_connections(command: str, cores: int | None) -> int:
    """Connections one instance of a process holds: Celery's --concurrency/-c children (default: the
    cores), Gunicorn's -w/--workers, else one."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for i, word in enumerate(words):
        for flag in ("--concurrency", "-c", "--workers", "-w"):
            if word == flag and i + 1 < len(words) and words[i + 1].isdigit():
                return int(words[i + 1])
            if word.startswith(f"{flag}=") and word.split("=", 1)[1].isdigit():
                return int(word.split("=", 1)[1])
    if (
        "celery" in words
        and "worker" in words
        and not re.search(r"-P\s*(solo|threads)|--pool[= ]solo", command)
    ):
        return cores or 1
    return 1


def budget(config: Config, modules: Iterable[PythonFile], cores: int | None = None) -> Budget | None:
    """The connection budget of services.postgres (None: deploy runs no Postgres for the app); `cores`:
    the web hosts' cores when known (setup asks them), else server.cores."""
    postgres = config.services.postgres
    if postgres is None:
        return None
    found = pool(modules)
    out = Budget(postgres.max_connections)
    web_hosts = sum(1 for h in config.server.hosts if "web" in h.roles)
    workers = config.workers_for(cores)
    if workers is None:
        workers, out.at_least = 3, True
    concurrency, how = _concurrency(config)
    cap = found.cap
    if cap is None and concurrency == ASYNC_CONCURRENCY:
        out.unbounded = (
            f"NullPool behind {config.gunicorn.worker_class} workers: each of up to {ASYNC_CONCURRENCY} "
            "concurrent requests per worker opens its own connection, nothing caps them"
        )
        return out
    per_worker = concurrency if cap is None else min(concurrency, cap)
    per = f"{per_worker} connection{'s' if per_worker != 1 else ''} ({how}; {found.describe()})"
    count = f"{workers} workers{' (auto, 1 core)' if out.at_least else ''}"
    out.terms.append(
        (f"{web_hosts} web host(s) × {count} × {per} × 2 releases", web_hosts * workers * per_worker * 2)
    )
    for name, process in sorted(config.processes.items()):
        hosts = len(config.process_hosts(name))
        each = _process_connections(process.command, cores or config.server.cores)
        out.terms.append(
            (f"{name}: {hosts} host(s) × {process.instances} × {each}", hosts * process.instances * each)
        )
    jobs = sum(len(config.server.hosts) if job.hosts == "all" else 1 for job in config.jobs.values())
    if jobs:
        out.terms.append(("jobs", jobs))
    if postgres.backups is not None:
        out.terms.append(("backup", 1))
    if config.app.release:
        out.terms.append(("release command", 1))
    return out
