import http.client
import os
import socket
import subprocess
import sys
import time

sock, host, path, timeout, unit, release = sys.argv[1:7]
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(sock)
deadline = time.monotonic() + float(timeout)
last = "no answer yet"
def stopped():
    # Started, then gone (or restarting after a crash): no point in waiting longer.
    show = ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "Job", unit]
    out = subprocess.run(show, capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state, sub = props.get("ActiveState", ""), props.get("SubState", "")
    if sub == "auto-restart" or (state in ("failed", "inactive") and not props.get("Job")):
        return f"{unit} is {state} ({sub}): the app stopped (see its log below)"
    return ""
# Wait for the start the push queued (restart --no-block): it ends once Gunicorn has imported the app
# and bound its socket, or fails if the app exits first. One process waits; nothing polls during the
# import (the state is looked at again only every 0.5 s while the health path does not answer 200).
left = max(1.0, deadline - time.monotonic())
try:
    begun = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=left)
except subprocess.TimeoutExpired:
    print(f"not healthy after {timeout}s: {unit} is still starting (the app's import has not finished)")
    sys.exit(4)
if begun.returncode != 0:
    print(f"{unit} did not start: the app exited while starting (see its log below)")
    sys.exit(3)
checked = time.monotonic()
while True:
    try:
        c = Conn(host, timeout=5)
        headers = {"Host": host, "User-Agent": "deploy-health", "X-Forwarded-Proto": "https"}
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read(300).decode("utf-8", "replace").strip()
        if r.status == 200:
            break
        last = f"GET {path} answered {r.status}: {body[:200]}"
    except OSError as exc:
        last = f"GET {path} failed: {exc}"
    if time.monotonic() > deadline:
        print(f"not healthy after {timeout}s: {last}")
        sys.exit(4)
    if time.monotonic() - checked > 0.5:
        checked = time.monotonic()
        gone = stopped()
        if gone:
            print(gone)
            sys.exit(3)
    time.sleep(0.05)
show = ["systemctl", "show", "-p", "MainPID", "--value", unit]
pid = subprocess.run(show, capture_output=True, text=True).stdout.strip()
cwd = os.path.realpath(f"/proc/{pid}/cwd") if pid and pid != "0" else ""
if release and not cwd.endswith("/" + release):
    print(f"{unit} answers but runs {cwd or 'an unknown directory'}, not release {release}")
    sys.exit(5)
print(f"healthy: GET {path} answered 200 from {unit} running {cwd}")
