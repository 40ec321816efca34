"""The two apps of tests/hosts/test_processes.py: the files each adds to the example app, and the
processes and the timer of its deploy.yaml (an RQ app, flaskr, and a Celery app, celapp)."""

#: Every app records into its own Redis: "done" (each job's number once it is done), "sched:events"
#: (the scheduler's starts and stops), "ticks" (what the scheduler sent), "timer" (the timer's runs).
RECORD = '''\
"""What the jobs, the scheduler and the timer record (in the app's own Redis, REDIS_URL)."""

import atexit
import os
import socket
import time

from redis import Redis


def redis():
    return Redis.from_url(os.environ["REDIS_URL"])


def started(what):
    """The scheduler's start, and its stop when it exits (its warm shutdown ends in sys.exit)."""
    me = f"{socket.gethostname()} {os.getpid()} {what}"
    connection = redis()
    connection.rpush("sched:events", f"start {time.time():.3f} {me}")
    atexit.register(lambda: connection.rpush("sched:events", f"stop {time.time():.3f} {me}"))
'''

RQ_JOBS = '''\
"""Jobs the RQ worker runs."""

import time

from flaskr.record import redis


def record(number):
    time.sleep(0.3)  # a job in hand while the old workers get their warm shutdown
    redis().rpush("done", number)


def tick():
    redis().incr("ticks")
'''

RQ_CRON = '''\
"""`rq cron` reads this: tick every 2 s; the scheduler records its start and stop, and touches its
heartbeat file (deploy's ready: heartbeat) while it runs."""

import pathlib
import threading
import time

from rq import cron

from flaskr.jobs import tick
from flaskr.record import started

HEARTBEAT = pathlib.Path("/srv/flaskr/shared/instance/cron.heartbeat")


def beat():
    while True:
        HEARTBEAT.touch()
        time.sleep(1)


started("rq-cron")
threading.Thread(target=beat, daemon=True).start()
cron.register(tick, queue_name="default", interval=2)
'''

WORKERS = '''\
"""The worker class `rq worker -w workers.AppWorker` runs."""

from rq import Worker as AppWorker  # noqa: F401
'''

RQ_ENQUEUE = '''\
"""Enqueue `count` jobs (0: until enqueue:stop is set), one every `pause` seconds; `enqueued` counts
them (run on a host, in a release, with the app's env)."""

import sys
import time

from rq import Queue

from flaskr.record import redis

connection = redis()
queue = Queue("default", connection=connection)
connection.delete("enqueue:stop", "enqueued")
number = 0
while number < int(sys.argv[1]) or (sys.argv[1] == "0" and not connection.exists("enqueue:stop")):
    queue.enqueue("flaskr.jobs.record", number)
    number = connection.incr("enqueued")
    time.sleep(float(sys.argv[2]))
'''

CELERY_APP = '''\
"""The Celery app: its broker is REDIS_URL as deploy writes it (rediss://, verifying deploy's CA)."""

import os
import socket
import time

from celery import Celery
from celery.signals import beat_init

from flaskr.record import redis, started

if os.environ.get("DEPLOY_PROCESS") == "worker" and os.environ.get("CRASH_WORKER"):
    raise RuntimeError("this release's worker cannot start")

app = Celery("flaskr", broker=os.environ["REDIS_URL"])
app.conf.update(
    task_default_queue="default",
    task_acks_late=True,  # acknowledged once done: a job in hand at a stop is not lost
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    beat_schedule={"tick": {"task": "flaskr.celery_app.tick", "schedule": 2.0}},
)


@app.task
def record(number):
    time.sleep(0.3)
    redis().rpush("done", number)


@app.task
def tick():
    redis().incr("ticks")


@beat_init.connect
def ready(sender=None, **kwargs):
    """Beat has its schedule: record the start and tell systemd (ready: notify)."""
    started("celery-beat")
    where = os.environ.get("NOTIFY_SOCKET")
    if where:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect("\\0" + where[1:] if where.startswith("@") else where)
            sock.sendall(b"READY=1")
'''

CELERY_ENQUEUE = '''\
"""Send `count` tasks (0: until enqueue:stop is set), one every `pause` seconds; `enqueued` counts
them (run on a host, in a release, with the app's env)."""

import sys
import time

from flaskr.celery_app import record
from flaskr.record import redis

connection = redis()
connection.delete("enqueue:stop", "enqueued")
number = 0
while number < int(sys.argv[1]) or (sys.argv[1] == "0" and not connection.exists("enqueue:stop")):
    record.delay(number)
    number = connection.incr("enqueued")
    time.sleep(float(sys.argv[2]))
'''

#: The timer: every TIMER_PERIOD seconds, on the first host; it records the period it ran for and where.
TIMER_PERIOD = 20
STAMP = f"""\
import time

# The timer fires on the period's first second; the period is read first and rounded down, so a start
# delayed by imports on a busy host still counts for its own period.
period = int(time.time() // {TIMER_PERIOD})

import socket  # noqa: E402

from flaskr.record import redis  # noqa: E402

connection = redis()
connection.incr(f"timer:{{period}}")
connection.rpush("timer", f"{{period}} {{socket.gethostname()}}")
"""

TIMER = f"""\
jobs:
  stamp:
    command: python stamp.py
    schedule: '*:*:0/{TIMER_PERIOD}'
    timeout: 60
"""

RQ_PROCESSES = """\
processes:
  scheduler:
    command: rq cron --url "$REDIS_URL" cron_config.py
    singleton: true
    ready: {heartbeat: /srv/flaskr/shared/instance/cron.heartbeat}
    settle: 2
  worker:
    command: rq worker --url "$REDIS_URL" --with-scheduler -w workers.AppWorker default
    instances: 2
    stop_timeout: 30
    ready: rq
    settle: 3
"""

CELERY_PROCESSES = """\
processes:
  beat:
    command: celery -A flaskr.celery_app beat -s /srv/celapp/shared/instance/celerybeat-schedule
    singleton: true
    ready: notify
    settle: 2
  worker:
    command: celery -A flaskr.celery_app worker -n "worker-$DEPLOY_INSTANCE@%h" -c 2 -l info
    instances: 2
    stop_timeout: 30
    ready: celery
    settle: 3
"""
