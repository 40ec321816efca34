import json
import os
import subprocess
import sys
from typing import Any

want = json.loads(sys.argv[1])
def run(*argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return r.returncode, r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, ""
children: dict[str, list[str]] = {}
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = fh.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(entry)
out: dict[str, Any] = {"workers": {}}
for unit in want["units"]:
    _, pid = run("systemctl", "show", "-p", "MainPID", "--value", unit)
    out["workers"][unit] = len(children.get(pid, [])) if pid.isdigit() and int(pid) > 0 else None
out["certbot_timer"] = run("systemctl", "is-active", "certbot.timer")[1] or None
path = want["disk"]
while not os.path.exists(path):
    path = os.path.dirname(path) or "/"
st = os.statvfs(path)
out["disk"] = {"free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize, "path": path}
print(json.dumps(out))
