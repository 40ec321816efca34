"""The rendered gunicorn.conf.py passes `gunicorn --check-config` with the example app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.remote.facts import HostFacts
from deploy.render.render import render

ROOT = Path(__file__).resolve().parents[2]
FLASKR = ROOT / "playbooks" / "flaskr"

pytestmark = [
    pytest.mark.tools,
    pytest.mark.real_tools("gunicorn"),
]


def gunicorn(
    tmp_path: Path, facts: HostFacts, *args: str, secret: bool = True
) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(render(load(FLASKR / "deploy.yaml", None), facts)["gunicorn.conf.py"])
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    if secret:
        env["SECRET_KEY"] = "check-config-secret-0123456789abcdef"
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(conf), *args, "flaskr:create_app()"],
        cwd=FLASKR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if " = " in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.mark.parametrize("facts", [HostFacts(), HostFacts(cores=4)], ids=["cores-on-host", "cores-known"])
def test_check_config_passes(tmp_path: Path, facts: HostFacts) -> None:
    done = gunicorn(tmp_path, facts, "--check-config")
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_config_loads_the_app(tmp_path: Path) -> None:
    """--check-config imports the app: without SECRET_KEY the example app refuses to start."""
    done = gunicorn(tmp_path, HostFacts(), "--check-config", secret=False)
    assert done.returncode != 0 and "SECRET_KEY is not set" in done.stdout + done.stderr


def test_gunicorn_reads_the_settings(tmp_path: Path) -> None:
    found = settings(gunicorn(tmp_path, HostFacts(), "--print-config").stdout)
    assert found["workers"] == str(len(os.sched_getaffinity(0)) * 2 + 1)
    assert found["worker_tmp_dir"] == "/dev/shm"
    assert found["forwarded_allow_ips"] == "[]" and found["forwarder_headers"] == "[]"
    assert found["secure_scheme_headers"] == "{'X-FORWARDED-PROTO': 'https'}"
    assert found["umask"] == "7" and found["accesslog"] == "None" and found["errorlog"] == "-"
    assert found["max_requests"] == "10000" and found["max_requests_jitter"] == "1000"
    assert settings(gunicorn(tmp_path, HostFacts(cores=4), "--print-config").stdout)["workers"] == "9"


# An app that opens a pooled connection while it is imported (as `db.create_all()` in a factory does)
# and marks that connection with a TEMP table, which only the same SQLite connection can see.
POOLED_APP = """
import os
import sqlalchemy as sa
from flask import Flask

engine = sa.create_engine("sqlite:///" + os.environ["POOLED_DB"])
with engine.connect() as conn:
    conn.execute(sa.text("CREATE TEMP TABLE opened_in_master (x)"))

app = Flask(__name__)

@app.get("/")
def which():
    with engine.connect() as conn:
        query = "SELECT count(*) FROM sqlite_temp_master WHERE name = 'opened_in_master'"
        seen = conn.execute(sa.text(query))
        return {"pid": os.getpid(), "inherited": bool(seen.scalar())}
"""


def serve_pooled(
    tmp_path: Path, conf_text: str, app: str = POOLED_APP, count: int = 20
) -> list[dict[str, object]]:
    """Run `app` (pooled.py) under real Gunicorn with `conf_text` (2 workers, a unix socket); what
    `count` requests saw."""
    import http.client
    import json
    import socket
    import time

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(path))

    (tmp_path / "pooled.py").write_text(app)
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(conf_text)
    path = tmp_path / "app.sock"
    path.unlink(missing_ok=True)
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "POOLED_DB": str(tmp_path / "app.db")}
    argv = ["-c", str(conf), "-w", "2", "--graceful-timeout", "2", "-b", f"unix:{path}", "pooled:app"]
    with log.open("w") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *argv],
            cwd=tmp_path,
            env=env,
            stdout=errors,
            stderr=subprocess.STDOUT,
        )
    seen: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < count:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no answer in 60 s:\n{log.read_text()}"
            conn = UnixConnection("localhost", timeout=10)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                assert response.status == 200, response.read()
                seen.append(json.loads(response.read()))
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.1)  # not listening yet
            finally:
                conn.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    return seen


def test_preloaded_workers_never_share_the_masters_connections(tmp_path: Path) -> None:
    conf = render(load(FLASKR / "deploy.yaml", None), HostFacts())["gunicorn.conf.py"]
    assert "preload_app = True" in conf and "def post_fork" in conf
    seen = serve_pooled(tmp_path, conf)
    assert not any(answer["inherited"] for answer in seen), seen
    # Without the hook, the same preloaded app does hand the master's connection to its workers.
    unguarded = conf.replace("def post_fork(", "def _unused_post_fork(")
    assert any(answer["inherited"] for answer in serve_pooled(tmp_path, unguarded))


# An app that builds 300,000 objects the garbage collector tracks while it is imported (as a model
# made of Python objects would), and reports what a full collection leaves private to the worker.
BIG_APP = """
import gc
import os
from flask import Flask

class Node:
    def __init__(self, i):
        self.children = [i]

MODEL = [Node(i) for i in range(300_000)]
app = Flask(__name__)

@app.get("/")
def memory():
    gc.collect()
    with open("/proc/self/smaps_rollup") as fh:
        lines = [line.split() for line in fh]
    private = sum(int(f[1]) for f in lines if f[0] in ("Private_Dirty:", "Private_Clean:"))
    return {"pid": os.getpid(), "private_kb": private}
"""


def test_preloaded_workers_share_the_apps_memory(tmp_path: Path) -> None:
    conf = render(load(FLASKR / "deploy.yaml", None), HostFacts())["gunicorn.conf.py"]
    assert "gc.freeze()" in conf
    frozen = max(int(str(a["private_kb"])) for a in serve_pooled(tmp_path, conf, BIG_APP, count=6))
    # Without the freeze, a collection in a worker writes to every tracked object the master made,
    # which copies those pages into the worker (about 45 MB here).
    thawed = conf.replace("gc.freeze()", "pass")
    copied = max(int(str(a["private_kb"])) for a in serve_pooled(tmp_path, thawed, BIG_APP, count=6))
    assert copied > 30_000, copied
    assert frozen < copied / 3, (frozen, copied)


# A factory that fails while Gunicorn imports the app. With preload_app, Gunicorn alone prints only
# "Error: model weights missing" for a RuntimeError: no file, no line.
BROKEN_APP = """\
from flask import Flask


def load_model():
    raise RuntimeError("model weights missing")


def create_app():
    app = Flask(__name__)
    app.config["MODEL"] = load_model()
    return app
"""


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_an_app_that_cannot_be_imported_shows_its_traceback(tmp_path: Path, preload: bool) -> None:
    from deploy.push.applog import excerpt

    conf = render(load(FLASKR / "deploy.yaml", None), HostFacts(cores=1))["gunicorn.conf.py"]
    assert "preload_app = True" in conf
    if not preload:
        conf = conf.replace("preload_app = True", "preload_app = False")
    (tmp_path / "gunicorn.conf.py").write_text(conf)
    (tmp_path / "broken.py").write_text(BROKEN_APP)
    argv = ["-c", "gunicorn.conf.py", "-b", f"unix:{tmp_path / 'app.sock'}", "broken:create_app()"]
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    raising = f'    File "{tmp_path / "broken.py"}", line 5, in load_model\n'
    assert raising + '      raise RuntimeError("model weights missing")\n' in log, log
    assert f'    File "{tmp_path / "broken.py"}", line 10, in create_app\n' in log
    shown = excerpt(log)
    assert shown.startswith("deploy: the app broken:create_app() could not be loaded:\n")
    assert raising in shown + "\n" and shown.endswith("\n  RuntimeError: model weights missing")
    if preload:
        # The master logs it once and stops (exit status 1), before it forks a worker.
        assert done.returncode == 1 and log.count("Traceback") == 1 and "Booting worker" not in log
    else:
        # Each worker that tried logs it; the master stops with "App failed to load" (no respawns).
        assert "App failed to load." in log
