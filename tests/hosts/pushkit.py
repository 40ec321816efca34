"""Helpers for push tests: a private sandbox, a git project of the example app, `deploy` runs, a load loop."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost, check_prerequisites

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "playbooks" / "flaskr"
DOMAIN = "flaskr.test"

DEPLOY_YAML = """\
app:
  name: flaskr
  wsgi: "flaskr:create_app()"
  static: {{url: /static, dir: flaskr/static}}
  env: {{LOG_LEVEL: info, SESSION_COOKIE_SECURE: "false"}}
  secrets: [SECRET_KEY]
  shared: [instance]
  release: {release}
{app_extra}server:
  domains: [{domain}]
  hosts: {hosts}
  user: flaskr
  tls: false
  ssh: {{key: {key}, known_hosts: {known_hosts}{ssh}}}
push: {{health_timeout: 8{push}}}
hooks: {hooks}
{extra}"""

HEALTH_MARK = '"status": "ok"'


@dataclass
class Project:
    """A git repository holding the example app and a deploy.yaml for sandbox hosts."""

    path: Path
    hosts: list[SandboxHost]

    def write_config(
        self,
        release: str = '["flask --app flaskr init-db"]',
        hooks: str = "{}",
        app_extra: str = "",
        ssh: str = "",
        push: str = "",
        extra: str = "",
    ) -> None:
        """deploy.yaml for the project's hosts; `app_extra`, `ssh` and `push` add keys (YAML lines
        under app:, inside server.ssh and inside push; `extra`, top-level sections)."""
        first = self.hosts[0]
        text = DEPLOY_YAML.format(
            release=release,
            domain=DOMAIN,
            hosts="[" + ", ".join(h.address for h in self.hosts) + "]",
            key=first.key,
            known_hosts=first.known_hosts,
            hooks=hooks,
            app_extra="".join(f"  {line}\n" for line in app_extra.splitlines()),
            ssh=f", {ssh}" if ssh else "",
            push=f", {push}" if push else "",
            extra="".join(f"{line}\n" for line in extra.splitlines()),
        )
        (self.path / "deploy.yaml").write_text(text, encoding="utf-8")

    def set_version(self, version: str, extra: str = "") -> None:
        """Make /health answer {"version": version} (plus `extra` code in create_app), and commit."""
        init = self.path / "flaskr" / "__init__.py"
        text = init.read_text(encoding="utf-8")
        marker = '    @app.get("/health")'
        start = text.index("    # deploy-test-version") if "# deploy-test-version" in text else None
        if start is not None:
            end = text.index(marker)
            text = text[:start] + text[end:]
        block = f"    # deploy-test-version\n    app.config['TEST_VERSION'] = {version!r}\n{extra}"
        text = text.replace(marker, block + marker)
        text = text.replace(
            'return {"status": "ok", "release"',
            'return {"version": app.config["TEST_VERSION"], "status": "ok", "release"',
        )
        init.write_text(text, encoding="utf-8")
        self.commit(f"version {version}")

    def commit(self, message: str) -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message, "--allow-empty")

    def deploy(
        self, *args: str, check: bool = False, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "deploy", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            check=False,
        )
        print(f"$ deploy {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}")
        if check and result.returncode != 0:
            raise AssertionError(f"deploy {' '.join(args)} failed with {result.returncode}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy", *args],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SECRET_KEY"] = "test-secret-key-0123456789abcdef"
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env} if env else None,
    ).stdout


#: The example's first commit, the same in every project made here: they are clones of one project
#: (its git root commit is its identity on a host), as the example app is one app.
ROOT_COMMIT_DATE = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def make_project(root: Path, hosts: list[SandboxHost]) -> Project:
    path = root / "app"
    shutil.copytree(EXAMPLE, path, ignore=shutil.ignore_patterns("__pycache__", "instance", ".env"))
    (path / ".gitignore").write_text(".env\ninstance/\n__pycache__/\n", encoding="utf-8")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "the example app", env=ROOT_COMMIT_DATE)
    project = Project(path, hosts)
    project.write_config()
    project.set_version("v1")
    return project


def get(address: str, path: str = "/health", timeout: float = 5) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": DOMAIN})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@contextmanager
def private_sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    hosts: int,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Sandbox]:
    """A sandbox of `hosts` hosts that only one test module uses (it may break them), always taken down."""
    check_prerequisites()
    sandbox = Sandbox(tmp_path_factory.mktemp(name), progress=progress or (lambda m: None))
    try:
        sandbox.up(hosts)
        yield sandbox
    finally:
        sandbox.down()


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 120) -> None:
    """Poll `ready` every second until it holds (a test waits for an event, not for the worst case)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"not {what} after {timeout:g}s"
        time.sleep(1)


def addresses(project: Project) -> list[str]:
    return [h.address for h in project.hosts]


def versions(project: Project) -> list[str | None]:
    """The version each host's site answers, in host order."""
    return [version(a) for a in addresses(project)]


def version(address: str) -> str | None:
    import json

    status, body = get(address)
    if status != 200:
        return None
    return str(json.loads(body).get("version"))


@dataclass
class Load:
    """Requests in a loop from several threads against every host until stopped; counts outcomes."""

    addresses: list[str]
    threads: int = 4
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, index: int) -> None:
        paths = ["/health", "/", "/static/style.css"]
        n = index
        while not self._stop.is_set():
            address = self.addresses[n % len(self.addresses)]
            path = paths[n % len(paths)]
            n += 1
            try:
                status, _body = get(address, path, timeout=10)
                key = "ok" if status == 200 else f"http {status}"
            except OSError as exc:
                key = "error"
                with self._lock:
                    self.errors.append(f"{address}{path}: {exc}")
            with self._lock:
                self.counts[key] += 1
                if key != "ok" and len(self.errors) < 20:
                    self.errors.append(f"{address}{path}: {key}")

    def _done(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def _wait_done(self, count: int, timeout: float = 30) -> None:
        """Until `count` requests in all have finished (each thread answers within its 10 s timeout)."""
        deadline = time.monotonic() + timeout
        while self._done() < count:
            assert time.monotonic() < deadline, f"the load made only {self._done()} requests in {timeout:g}s"
            time.sleep(0.02)

    def __enter__(self) -> Load:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._workers.append(thread)
        # Every thread is sending requests (one each has come back) before the block starts.
        self._wait_done(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        # Requests sent after the block ended (one round from each thread) are counted too.
        self._wait_done(self._done() + 2 * self.threads)
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)

    @property
    def failed(self) -> int:
        return sum(n for key, n in self.counts.items() if key != "ok")
