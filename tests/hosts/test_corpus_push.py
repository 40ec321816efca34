"""Issue #16: every corpus app that runs without outside services, pushed to a real sandbox host.

For each app labelled `runnable: true` (tests/corpus/labels/*.yaml), from the fetched cache
(`python -m tests.corpus.fetch`; skipped locally, a failure under CI=true when missing): a committed copy of
the sdist with a deploy.yaml for ONE sandbox host (the label's deploy_yaml, adapted as a user would: the
host's address and key, plain HTTP, the requirements the app really needs), then `deploy setup` and
`deploy push`, and through the site on port 80:

- the app serves a page that proves it is that app (HTTP 200, the app's own text);
- it stores a piece of data through its own HTTP interface (a note, a bookmark, a project, a dataset);
- a second push (a changed file) keeps that data, and so does `deploy rollback` (read back each time).

One host, booted once, serves every app: each app has its own `app.name`, user, directories and domain.

dtale, the fourth runnable app, is not here: it serves (pushed and answering in a trial of this test), but it
cannot keep data across a push by its design, whatever deploys it. Its datasets live in the process's
memory (dtale/global_state.py); its only file-backed store, `global_state.use_shelve_store(dir)`, refuses to
read back its own metadata, so a CSV upload fails ("Forbidden unpickle:
pandas._libs.tslibs.timestamps._unpickle_timestamp", from the safe unpickler of dtale 3.22.0), and its other
stores need Redis or ArcticDB (outside services).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.conftest import unavailable
from tests.corpus.fetch import fetch_command, is_fetched, load_apps, project_dir
from tests.hosts.pushkit import REPO, ROOT_COMMIT_DATE, git, private_sandbox

pytestmark = [pytest.mark.hosts, pytest.mark.corpus]

APPS = {app.name: app for app in load_apps()}

#: Secrets the apps read from the environment (deploy sends `app.secrets` from the pushing machine's env).
SECRETS = {
    "SECRET_KEY": "corpus-secret-key-0123456789abcdef",
    "BUKUSERVER_SECRET_KEY": "corpus-buku-key-0123456789abcdef",
}


# --- HTTP through the host's Nginx ------------------------------------------------------------------


@dataclass
class Site:
    """One app's domain on the host's port 80, with the cookies it set (a tiny browser)."""

    address: str
    domain: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.address, 80, timeout=30)
        sent = {"Host": self.domain, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, text
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return self.request("GET", path, headers=headers)

    def post_json(self, path: str, data: object, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return self.request(
            "POST", path, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def post_form(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        from urllib.parse import urlencode

        return self.request(
            "POST", path, urlencode(data).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- the apps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """How one corpus app is made ready for a push, and how its page and its data are checked."""

    name: str  # apps.json name
    app_yaml: str  # the `app:` section (and any top-level sections after it), {domain} not needed
    prepare: Callable[[Path], None]  # what a user changes in the copy so the app installs and runs
    page: str  # a path that serves the app's own page
    marker: str  # text on that page that proves it is this app
    store: Callable[[Site], str]  # stores a piece of data through the app's HTTP interface; its key
    read: Callable[[Site, str], str]  # reads it back (the text that must contain the stored value)
    value: str  # the stored value read back
    #: What an operator does on the host after `deploy setup` (a settings file outside the release).
    on_host: Callable[[Sandbox, SandboxHost], None] | None = None

    @property
    def app_name(self) -> str:
        """deploy's `app.name` (also the host user and the domain's first label)."""
        return self.app_yaml.split("name:", 1)[1].split("\n", 1)[0].strip()


VALUE = "corpus-kept-across-push-and-rollback"


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + "\n" + text, encoding="utf-8")


# archivy: TinyDB + Markdown files in ARCHIVY_INTERNAL_DIR_PATH (a shared folder); a user is made by the
# app's own CLI (`create-admin`) as a release command; the API logs in with HTTP basic auth.
ARCHIVY_USER, ARCHIVY_PASSWORD = "corpus", "corpus-pass-1"


def _archivy_prepare(root: Path) -> None:
    # models.py imports pkg_resources, which setuptools 81 dropped and no requirement installs; every page
    # asks pkg_resources for the installed `archivy` distribution's version (routes.py:34), and deploy
    # installs the requirements, never the project itself: the published distribution of the same version
    # provides that metadata (the code served is still the release's: the release folder comes first on
    # sys.path).
    _append(root / "requirements.txt", "gunicorn\nsetuptools<81\narchivy==1.7.7\n")


def _archivy_login(site: Site) -> None:
    site.cookies.clear()  # each release signs sessions with a new random key (archivy config.py:9)
    status, body = site.request("POST", "/api/login", b"", basic(ARCHIVY_USER, ARCHIVY_PASSWORD))
    assert status == 200, f"archivy login: {status} {body[:300]}"


def _archivy_store(site: Site) -> str:
    _archivy_login(site)
    status, body = site.post_json("/api/notes", {"title": "corpus note", "content": VALUE, "tags": []})
    assert status == 200, f"archivy note: {status} {body[:300]}"
    return str(json.loads(body)["note_id"])


def _archivy_read(site: Site, key: str) -> str:
    _archivy_login(site)
    status, body = site.get(f"/api/dataobjs/{key}")
    assert status == 200, f"archivy read: {status} {body[:300]}"
    return str(json.loads(body)["content"])


ARCHIVY = Corpus(
    name="archivy",
    app_yaml=f"""\
app:
  name: archivy
  wsgi: "archivy:app"
  requirements: requirements.txt
  static: {{url: /static, dir: archivy/static}}
  health: /login
  env:
    ARCHIVY_INTERNAL_DIR_PATH: archivy-data
  shared: [archivy-data]
  release: ["python -m archivy.cli create-admin {ARCHIVY_USER} --password {ARCHIVY_PASSWORD}"]
# archivy signs sessions with os.urandom(32) per process (config.py:9): one worker, or a login works
# only on the worker that made it (the label's SEC023 problem).
gunicorn: {{workers: 1, worker_class: sync, timeout: 30}}
""",
    prepare=_archivy_prepare,
    page="/login",
    marker="Archivy",
    store=_archivy_store,
    read=_archivy_read,
    value=VALUE,
)


# buku (bukuserver): SQLite at BUKUSERVER_DB_FILE in a shared folder; the REST API adds a bookmark.
def _buku_prepare(root: Path) -> None:
    # requirements.txt lists only the CLI's dependencies: add the [server] extra of pyproject.toml and a
    # WSGI server, as a user would (pip install 'buku[server]' gunicorn).
    _append(
        root / "requirements.txt",
        "arrow>=1.2.2\nFlask-Admin>=2.0.0\nflask-paginate>=2022.1.8\nFlask-WTF>=1.0.1\nFlask>=2.2.2\n"
        "Jinja2>=3\nflasgger>=0.9.7.1\ngunicorn\n",
    )
    # create_app() loads bukuserver/apidocs/template.yml (server.py:123), which the 5.1 sdist does not ship
    # (`bukuserver run` from the sdist fails the same way): the copy gets a minimal OpenAPI template.
    apidocs = root / "bukuserver" / "apidocs"
    apidocs.mkdir(exist_ok=True)
    (apidocs / "template.yml").write_text(
        'swagger: "2.0"\ninfo: {title: Bukuserver API, version: "5.1"}\n', encoding="utf-8"
    )


def _buku_store(site: Site) -> str:
    status, body = site.post_json(
        "/api/bookmarks",
        {"url": "https://example.org/corpus", "title": VALUE, "tags": ["corpus"], "fetch": False},
    )
    assert status == 200, f"buku add: {status} {body[:300]}"
    return str(json.loads(body)["index"])


def _buku_read(site: Site, key: str) -> str:
    status, body = site.get(f"/api/bookmarks/{key}")
    assert status == 200, f"buku read: {status} {body[:300]}"
    return str(json.loads(body)["title"])


BUKU = Corpus(
    name="buku",
    app_yaml="""\
app:
  name: bukuserver
  wsgi: "bukuserver.server:create_app()"
  requirements: requirements.txt
  static: {url: /static, dir: bukuserver/static}
  health: /api/tags
  env:
    BUKUSERVER_DB_FILE: data/bookmarks.db
  secrets: [BUKUSERVER_SECRET_KEY]
  shared: [data]
gunicorn: {workers: auto, worker_class: sync, timeout: 30}
""",
    prepare=_buku_prepare,
    page="/",
    marker="buku",
    store=_buku_store,
    read=_buku_read,
    value=VALUE,
)


# ihatemoney: configured by a settings file, by default /etc/ihatemoney/ihatemoney.cfg (run.py:75-82, relative
# paths resolve against that instance folder too). deploy ships nothing outside the release, so the operator
# writes it on the host (as ihatemoney's docs say): the SQLite database in the release's shared instance/
# folder instead of the default /tmp (private to each service instance), the secret key from deploy's env.
IHM_PROJECT, IHM_PASSWORD = "corpusproject", "corpus-pass-1"
IHM_SETTINGS = """\
import os
SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.path.join(os.getcwd(), "instance", "ihatemoney.db")
SECRET_KEY = os.environ["SECRET_KEY"]
SESSION_COOKIE_SECURE = False
"""


def _ihatemoney_prepare(root: Path) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    old = '"WTForms~=3.2.1",]'
    assert old in text, "ihatemoney's pyproject.toml changed: update the test"
    pyproject.write_text(text.replace(old, '"WTForms~=3.2.1", "gunicorn"]'), encoding="utf-8")


def _ihatemoney_host(box: Sandbox, host: SandboxHost) -> None:
    script = (
        "install -d -m 755 /etc/ihatemoney && cat > /etc/ihatemoney/ihatemoney.cfg && "
        "chgrp ihatemoney /etc/ihatemoney/ihatemoney.cfg && chmod 640 /etc/ihatemoney/ihatemoney.cfg"
    )
    box.run(host, ["sh", "-c", script], input=IHM_SETTINGS, check=True, timeout=30)


def _ihatemoney_store(site: Site) -> str:
    status, body = site.post_form(
        "/api/projects",
        {"name": VALUE, "id": IHM_PROJECT, "password": IHM_PASSWORD, "contact_email": "ops@example.com"},
    )
    assert status == 201, f"ihatemoney project: {status} {body[:300]}"
    return IHM_PROJECT


def _ihatemoney_read(site: Site, key: str) -> str:
    status, body = site.get(f"/api/projects/{key}", basic(key, IHM_PASSWORD))
    assert status == 200, f"ihatemoney read: {status} {body[:300]}"
    return str(json.loads(body)["name"])


IHATEMONEY = Corpus(
    name="ihatemoney",
    app_yaml="""\
app:
  name: ihatemoney
  wsgi: "ihatemoney.wsgi:application"
  requirements: pyproject.toml
  static: {url: /static, dir: ihatemoney/static}
  health: /healthcheck
  secrets: [SECRET_KEY]
  shared: [instance]
gunicorn: {workers: auto, worker_class: sync, timeout: 30}
""",
    prepare=_ihatemoney_prepare,
    page="/",
    marker="I Hate Money",
    store=_ihatemoney_store,
    read=_ihatemoney_read,
    value=VALUE,
    on_host=_ihatemoney_host,
)


CORPUS = [ARCHIVY, BUKU, IHATEMONEY]


# --- the copy, the config, deploy ----------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {**os.environ, **SECRETS}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Pushed:
    corpus: Corpus
    path: Path
    host: SandboxHost
    site: Site
    timings: dict[str, float] = field(default_factory=dict)

    def deploy(self, *args: str, timeout: float = 600) -> str:
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "deploy", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            check=False,
        )
        self.timings[args[0]] = self.timings.get(args[0], 0.0) + time.monotonic() - start
        out = result.stdout + result.stderr
        print(f"$ deploy {' '.join(args)}  ({self.corpus.name}, exit {result.returncode})\n{out}")
        assert result.returncode == 0, f"deploy {' '.join(args)} of {self.corpus.name}:\n{out[-4000:]}"
        assert "Traceback" not in out, out
        for secret in SECRETS.values():
            assert secret not in out, "a secret in deploy's output"
        return out

    def release(self, out: str) -> str:
        match = re.search(r"release (\S+) is live on", out)
        assert match, out
        return match.group(1)


def _deploy_yaml(corpus: Corpus, host: SandboxHost) -> str:
    name = corpus.app_name
    return corpus.app_yaml + (
        "server:\n"
        f"  domains: [{name}.test]\n"
        f"  hosts: [{host.address}]\n"
        f"  user: {name}\n"
        "  tls: false\n"
        f"  ssh: {{key: {host.key}, known_hosts: {host.known_hosts}}}\n"
        "push: {health_timeout: 60}\n"
    )


def _copy(corpus: Corpus, root: Path, host: SandboxHost) -> Pushed:
    app = APPS[corpus.name]
    if not is_fetched(app):
        unavailable(f"{app.key} is not in the corpus cache: run {fetch_command([app.name])}")
    path = root / corpus.name
    shutil.copytree(project_dir(app), path, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"{app.key} as published", env=ROOT_COMMIT_DATE)
    corpus.prepare(path)
    (path / "deploy.yaml").write_text(_deploy_yaml(corpus, host), encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "deploy.yaml, and what the app needs to run")
    return Pushed(corpus, path, host, Site(host.address, f"{corpus.app_name}.test"))


@pytest.fixture(scope="module")
def corpus_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, SandboxHost]]:
    with private_sandbox(tmp_path_factory, "corpus-push", 1) as box:
        yield box, box.hosts()[0]


def _page(pushed: Pushed) -> None:
    corpus = pushed.corpus
    status, body = pushed.site.get(corpus.page)
    assert status == 200, f"{corpus.name} {corpus.page}: {status} {body[:500]}"
    assert corpus.marker in body, f"{corpus.name} {corpus.page} is not the app's page: {body[:500]}"


@pytest.mark.parametrize("corpus", CORPUS, ids=lambda c: c.name)
def test_corpus_app_serves_and_keeps_its_data_across_a_push_and_a_rollback(
    corpus: Corpus, corpus_host: tuple[Sandbox, SandboxHost], tmp_path: Path
) -> None:
    box, host = corpus_host
    started = time.monotonic()
    pushed = _copy(corpus, tmp_path, host)
    pushed.deploy("setup")
    if corpus.on_host is not None:
        corpus.on_host(box, host)
    first = pushed.release(pushed.deploy("push"))
    _page(pushed)
    key = corpus.store(pushed.site)
    assert corpus.value in corpus.read(pushed.site, key)

    # A second push of a change: a new release, the same data.
    readme = next(p for p in sorted(pushed.path.glob("README*")) if p.is_file())
    _append(readme, "\nchanged by the corpus push test\n")
    git(pushed.path, "commit", "-q", "-am", "a change")
    second = pushed.release(pushed.deploy("push"))
    assert second != first
    _page(pushed)
    assert corpus.value in corpus.read(pushed.site, key)

    # Rollback to the first release: the data stored under it is still there.
    out = pushed.deploy("rollback")
    assert first in out, out
    _page(pushed)
    assert corpus.value in corpus.read(pushed.site, key)
    seconds = time.monotonic() - started
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in pushed.timings.items())
    print(f"[corpus-push] {corpus.name}: pushed, data kept; {seconds:.0f}s ({steps})", file=sys.__stderr__)
