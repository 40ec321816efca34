# Gunicorn settings for shop, rendered by deploy: edit deploy.yaml, not this file.
# No secrets here: they reach the app through the environment (/etc/shop/env under systemd).
# The socket is given on the command line (one per slot: /run/shop/<slot>.sock).
import os
import sys
import traceback

import gunicorn.util
from gunicorn.arbiter import Arbiter

# When the app cannot be imported, say why: its whole traceback, indented under one line that
# 'deploy push' looks for in the slot's log. Gunicorn alone prints only the message of a RuntimeError
# raised while the master imports the app (preload_app), nothing of an exit (SystemExit), and without
# preload_app buries each worker's traceback under its own. Then the slot stops: the master exits with
# status 1; a worker exits with Gunicorn's "App failed to load" status, which stops the master too
# (instead of forking new workers that would fail the same way).
_gunicorn_import_app = getattr(gunicorn.util.import_app, "__wrapped__", gunicorn.util.import_app)
_master_pid = os.getpid()


def _import_app(uri):
    """Gunicorn's own import of the app, which logs the traceback when the import fails."""
    try:
        return _gunicorn_import_app(uri)
    except (Exception, SystemExit) as exc:
        # Frames from this function down; the exception's causes and context too.
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
        indented = "".join("  " + line for line in text.rstrip("\n").splitlines(keepends=True))
        sys.stderr.write(f"deploy: the app {uri} could not be loaded:\n{indented}\n")
        sys.stderr.flush()
        sys.exit(1 if os.getpid() == _master_pid else Arbiter.APP_LOAD_ERROR)


_import_app.__wrapped__ = _gunicorn_import_app
gunicorn.util.import_app = _import_app

# Workers: 2 x the host's cores + 1.
workers = 5
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 30
keepalive = 5
backlog = 2048
# Recycle workers now and then (leaks), at staggered times so they never restart together.
max_requests = 10000
max_requests_jitter = 1000
# The app is imported once, in the master, and the workers are forked from it: a slot boots in the
# time of one import instead of one per worker, and recycling a worker imports nothing. Code is
# never stale: every release starts a master of its own. (preload_app: false in deploy.yaml if the
# app starts threads at import.)
preload_app = True
# SQLAlchemy engines the app created at import: their pooled connections belong to the master.
_master_engines = []


def when_ready(server):
    """In the master, once the app is imported and before the first worker is forked."""
    import gc
    import sys

    if "sqlalchemy.engine.base" in sys.modules:
        engine_class = sys.modules["sqlalchemy.engine.base"].Engine
        _master_engines.extend(o for o in gc.get_objects() if issubclass(type(o), engine_class))
    # Everything imported so far (a model loaded at import included) moves to the garbage
    # collector's permanent generation. Collections in the workers then never write to those
    # objects, so their memory pages stay shared with the master instead of being copied into
    # every worker.
    gc.freeze()


def post_fork(server, worker):
    """In each new worker: drop the copies of the master's pooled connections; open its own."""
    for engine in _master_engines:
        try:
            engine.dispose(close=False)
        except TypeError:  # SQLAlchemy before 1.4.33 has no close=False
            engine.pool = engine.pool.recreate()
# Heartbeat files in memory: a disk-backed /tmp can stall workers into timeouts.
worker_tmp_dir = "/dev/shm"

# Gunicorn 25.1+ opens a control socket (for gunicornc) served by an asyncio thread in the master.
# deploy never uses it, and it costs 20 ms of CPU at every slot start (measured); older Gunicorn
# ignores this setting, so no version pin is forced on the app.
control_socket_disable = True
# Sockets Gunicorn creates are group-accessible (rwxrwx---): Nginx reaches them through the group.
umask = 0o007

# Nginx is the only client, over a unix socket, and Gunicorn trusts unix-socket peers (only the
# app's group can connect). No TCP peer is trusted with X-Forwarded-* unless FORWARDED_ALLOW_IPS
# names it (a container behind a proxy on the Docker network); only X-Forwarded-Proto marks a
# request as HTTPS (Nginx always sets it), and no header may set SCRIPT_NAME/PATH_INFO.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarder_headers = ""

# Logs go to stdout/stderr, which systemd sends to the journal. Nginx logs every request with its
# request id and timings; Gunicorn's own access log costs about a fifth of the throughput.
# (no accesslog: gunicorn.access_log in deploy.yaml turns it on)
errorlog = "-"
loglevel = "info"
# client, status, request, bytes, time in ms, request id (set by Nginx), referrer, user agent.
access_log_format = '%({x-forwarded-for}i)s %(s)s "%(r)s" %(B)s %(M)sms id=%({x-request-id}i)s "%(f)s" "%(a)s"'
proc_name = "shop"
