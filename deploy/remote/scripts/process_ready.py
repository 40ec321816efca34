import json
import os
import re
import subprocess
import sys
import time

# Starts a release's process instances and waits until each is ready, or says why not (run as root).
# A singleton's old instance is stopped (its warm shutdown) before its new one starts: the gap between
# the two is printed. Exit 3: an instance stopped or restarted; 4: not ready in time.
with open(sys.argv[1], encoding="utf-8") as file:
    plan = json.load(file)
deadline = time.monotonic() + float(plan["timeout"])


def props(unit):
    show = ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts"]
    show += ["-p", "ExecMainStartTimestampMonotonic", "-p", "MainPID", unit]
    out = subprocess.run(show, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(unit):
    """The unit's last lines of its own output since this start (systemd's Starting/Started left out)."""
    time.sleep(0.5)  # the last lines of a crash reach the journal a little after the process is gone
    subprocess.run(["journalctl", "--sync"], capture_output=True)
    cmd = ["journalctl", "--no-pager", "--quiet", "-o", "cat", "-n", "60", "-u", unit]
    cmd += ["--since", f"@{int(started_at) - 1}"]
    lines = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
    own = [line for line in lines if not line.startswith(("Starting ", "Started ", "Stopping ", "Stopped "))]
    own = [line for line in own if not line.startswith(unit)]
    # The first crash's exception line (a restart repeats the traceback), then what came last.
    errors = [line for line in own if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    last = own[-3:]
    return "\n".join(([errors[0]] if errors and errors[0] not in last else []) + last)


def fail(code, unit, why):
    log = journal(unit)
    if log:
        print(log)
    print(f"{unit} {why}")
    sys.exit(code)


def systemctl(*args, budget=None):
    left = max(1.0, deadline - time.monotonic()) if budget is None else budget
    try:
        return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        return None


started_at = time.time()
# Instances left in the new slot by an interrupted push still run an older release: stop them first.
for pattern in plan["stale"]:
    systemctl("stop", pattern, budget=float(plan["stop_budget"]))
for old, new in plan["singletons"]:
    t0 = time.monotonic()
    if systemctl("stop", old, budget=float(plan["stop_budget"])) is None:
        print(f"{old} did not stop in time: {new} is not started (never two at once)")
        sys.exit(4)
    stopped = time.monotonic()
    begun = systemctl("start", new)
    print(
        f"singleton: {old} stopped in {stopped - t0:.1f}s, {new} started: a gap of "
        f"{time.monotonic() - stopped:.1f}s with none running"
    )
    if begun is None or begun.returncode != 0:
        fail(3, new, "did not start")
# The time to become ready counts from here: stopping the old singletons and stale instances has its own.
deadline = time.monotonic() + float(plan["timeout"])
units = [check["unit"] for check in plan["checks"]]
others = [u for u in units if u not in {new for _old, new in plan["singletons"]}]
if others:
    begun = systemctl("start", *others)
    if begun is None:
        print(f"not started after {plan['timeout']}s: {' '.join(others)}")
        sys.exit(4)
    if begun.returncode != 0:
        for unit in others:
            if props(unit).get("ActiveState") != "active":
                fail(3, unit, "did not start")
baseline = {u: props(u).get("NRestarts", "0") for u in units}
since = time.monotonic()
pending = {check["unit"]: check for check in plan["checks"]}
while pending:
    now = time.monotonic()
    for unit, check in list(pending.items()):
        state = props(unit)
        if state.get("SubState") == "auto-restart":
            fail(3, unit, "exited and systemd is restarting it: it crashes")
        if state.get("ActiveState") != "active":
            fail(3, unit, f"is {state.get('ActiveState')} ({state.get('SubState')}): it stopped")
        if state.get("NRestarts", "0") != baseline[unit]:
            fail(3, unit, f"restarted {state.get('NRestarts')} time(s) since it started: it crashes")
        if now - since < float(check["settle"]):
            continue
        kind = check["kind"]
        if kind == "heartbeat":
            try:
                beat = os.stat(check["heartbeat"]).st_mtime
            except OSError:
                beat = 0.0
            if beat < started_at:
                continue
        elif check.get("probe"):
            # The probe (systemd-run ...) knows the instance's main process: the `rq` probe looks for it.
            main_pid = f"--setenv=DEPLOY_MAIN_PID={state.get('MainPID', '')}"
            argv = [check["probe"][0], main_pid, *check["probe"][1:]]
            probe = subprocess.run(argv, capture_output=True, text=True)
            if probe.returncode != 0:
                check["last"] = (probe.stdout + probe.stderr).strip()[-300:]
                continue
        print(f"ready: {unit} ({kind}; alive {now - since:.0f}s without a restart)")
        del pending[unit]
    if pending and time.monotonic() > deadline:
        unit, check = next(iter(pending.items()))
        last = check.get("last")
        fail(4, unit, f"not ready after {plan['timeout']}s ({check['kind']})" + (f": {last}" if last else ""))
    if pending:
        time.sleep(0.5)
