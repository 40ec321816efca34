import fcntl
import glob
import grp
import hashlib
import json
import os
import platform
import pwd
import re
import subprocess
import sys
import time
from typing import Any

want = json.loads(sys.argv[1])
out: dict[str, Any] = {}
def run(*argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return r.returncode, (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return None, ""
def link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None
def read(path, limit=1000000):
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None
def owner(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    kind = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
    return {"owner": user, "group": group, "mode": st.st_mode & 0o7777, "kind": kind}
# Passive: gathered while this very push takes the lock, so no lock is tried here (a try would make the
# holder find the lock taken). Read first, before any state: the work file's stamp (see lock_holder.sh),
# and whether no holder and no step of a push was there then (quiet).
passive = bool(want.get("passive"))
quiet = stamp = None
if passive and want.get("work_file"):
    try:
        st = os.stat(want["work_file"])
        stamp = f"{st.st_ino} {st.st_size} {st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d}"
        stamp += f" {st.st_ctime_ns // 10**9}.{st.st_ctime_ns % 10**9:09d}"
        pids = [line.split(" ", 1)[0] for line in (read(want["work_file"]) or "").splitlines()]
        running = any(p.isdigit() and os.path.exists(f"/proc/{p}") for p in pids)
        quiet = not read(want["lock_info"]) and not running
    except OSError:
        stamp = None
out["cores"] = os.cpu_count()
libc = platform.libc_ver()
out["python"] = {"version": platform.python_version(), "machine": platform.machine(),
                 "libc": libc[0], "libc_version": libc[1], "executable": "/usr/bin/python3"}
wheels = sorted(glob.glob("/usr/share/python-wheels/pip-*.whl"))
out["pip_wheel"] = wheels[-1] if wheels else None
rc, text = run("nginx", "-v")
out["nginx_version"] = text.rsplit("/", 1)[-1].split()[0] if rc == 0 and "/" in text else None
out["nginx_ok"] = None
if want.get("nginx_test"):
    # nginx -T tests the configuration like -t and prints every file it read: the names each serves.
    rc, text = run("nginx", "-T")
    out["nginx_ok"] = rc == 0
    names: dict[str, Any] = {}
    source = None
    for part in re.split(r"^# configuration file (.+):$", text, flags=re.M)[1:]:
        if source is None:
            source = part
            continue
        body = re.sub(r"#[^\n]*", "", part)
        found = [n for m in re.findall(r"\bserver_name\s+([^;]+);", body) for n in m.split()]
        if found:
            names[source] = sorted(set(names.get(source, []) + found))
        source = None
    out["nginx_server_names"] = names
rc, text = run("systemctl", "--version")
words = text.split()
out["systemd_version"] = int(words[1]) if rc == 0 and len(words) > 1 and words[1].isdigit() else None
packages = want.get("packages") or []
query = ("dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages)
rc, text = run(*query) if packages else (0, "")
pairs = [line.split() for line in text.splitlines()]
out["packages"] = {p[0]: p[1] == "installed" for p in pairs if len(p) == 2}
try:
    pwd.getpwnam(want["user"])
    out["user_exists"] = True
except KeyError:
    out["user_exists"] = False
out["links"] = {name: link(path) for name, path in want.get("links", {}).items()}
out["owners"] = {path: owner(path) for path in want.get("owners", [])}
out["files"] = {path: read(path) for path in want.get("files", [])}
out["globs"] = {pattern: sorted(glob.glob(pattern)) for pattern in want.get("globs", [])}
for pattern in want.get("read_globs", []):
    out["globs"][pattern] = sorted(glob.glob(pattern))
    out["files"].update({path: read(path) for path in out["globs"][pattern]})
out["secret_files"] = {}
for path in want.get("secret_files", []):
    data = read(path)
    out["secret_files"][path] = None if data is None else hashlib.sha256(data.encode()).hexdigest()
releases = []
base = want["releases"]
for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
    info = read(os.path.join(base, name, ".deploy", "release.json"))
    try:
        info = json.loads(info) if info else None
    except ValueError:
        info = None
    # The marker names the release this one replaced when it first served (empty: none, or unknown).
    served = read(os.path.join(base, name, ".deploy", "served"), 200)
    releases.append({"id": name, "info": info, "served": served is not None,
                     "before": (served or "").strip() or None})
out["releases"] = releases
venvs = want["venvs"]
out["venvs"] = sorted(n for n in (os.listdir(venvs) if os.path.isdir(venvs) else [])
                      if os.path.exists(os.path.join(venvs, n, ".deploy-complete")))
# Those whose bytecode the background unit compiled (deploy.remote.bytecode.COMPILED).
out["compiled_venvs"] = [n for n in out["venvs"]
                         if os.path.exists(os.path.join(venvs, n, ".deploy-compiled"))]
out["wheels"] = sorted(os.listdir(want["wheels"])) if os.path.isdir(want["wheels"]) else []
current = link(want["links"]["current"]) if "current" in want.get("links", {}) else None
manifest_path = os.path.join(base, os.path.basename(current or "-"), ".deploy", "manifest.json")
manifest = read(manifest_path) if current else None
try:
    out["manifest"] = json.loads(manifest) if manifest else None
except ValueError:
    out["manifest"] = None
units = want.get("units", [])
states = run("systemctl", "is-active", *units)[1].splitlines() if units else []
out["services"] = {u: (states[i] if i < len(states) else "") or "unknown" for i, u in enumerate(units)}
lock_info = read(want["lock_info"])
held = None
if os.path.exists(want["lock_file"]) and not passive:
    try:
        with open(want["lock_file"], "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
    except OSError:
        held = True
age: float | None
try:
    age = os.stat(want["lock_info"]).st_mtime
except OSError:
    age = None

beat = None if age is None else time.time() - age
working = None
if want.get("work_file") and os.path.exists(want["work_file"]) and not passive:
    with open(want["work_file"], "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            steps = [line.split(" ", 1) for line in fh.read(100000).splitlines() if " " in line]
            alive = [name for pid, name in steps if pid.isdigit() and os.path.exists(f"/proc/{pid}")]
            name = alive[0] if alive else steps[-1][1] if steps else "unknown"
            working = "".join(c for c in name if c.isalnum() or c in " _.:-")[:80] or "unknown"
out["lock"] = {"held": bool(held), "record": lock_info, "heartbeat_age": beat, "working": working,
               "stamp": stamp, "quiet": bool(quiet)}
out["has_certificate"] = os.path.exists(want["certificate"]) if want.get("certificate") else None
# The user deploy logged in as: the probe runs as root through it (sudo), or it is root.
out["login_user"] = os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
base = want.get("base")
try:
    out["base_entries"] = sorted(os.listdir(base))[:20] if base and os.path.isdir(base) else None
except OSError:
    out["base_entries"] = None
print(json.dumps(out))
