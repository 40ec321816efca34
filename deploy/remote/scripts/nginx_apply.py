import os
import signal
import stat
import subprocess
import sys

for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    signal.signal(number, signal.SIG_IGN)
STAGED = "@STAGED@"
args, ops = sys.argv[1:], []
while args:
    kind, path = args[0], args[1]
    target = args[2] if kind == "link" else None
    ops.append((kind, path, target))
    args = args[3:] if kind == "link" else args[2:]
def snapshot(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    with open(path, "rb") as fh:
        return ("file", fh.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
def put(path, snap):
    tmp = path + ".deploy-restore"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    if snap is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    if snap[0] == "link":
        os.symlink(snap[1], tmp)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.write(fd, snap[1])
        os.fchown(fd, snap[3], snap[4])
        os.fchmod(fd, snap[2])
        os.fsync(fd)
        os.close(fd)
    os.replace(tmp, path)
before = {path: snapshot(path) for _, path, _ in ops}
try:
    for kind, path, target in ops:
        if kind == "file":
            os.replace(path + STAGED, path)
        elif kind == "link":
            if os.path.lexists(path + STAGED):
                os.unlink(path + STAGED)
            assert target is not None  # a link always names its target
            os.symlink(target, path + STAGED)
            os.replace(path + STAGED, path)
        elif os.path.lexists(path):
            os.unlink(path)
    test = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
    ok, said = test.returncode == 0, (test.stdout + test.stderr).strip()
except OSError as exc:
    ok, said = False, f"{exc.filename}: {exc.strerror}"
if not ok:
    for path, snap in before.items():
        put(path, snap)
    for kind, path, _ in ops:
        if kind == "file" and os.path.lexists(path + STAGED):
            os.unlink(path + STAGED)
    print(said)
    print("deploy: nginx -t rejected the new configuration; the previous Nginx files are back in place "
          "and Nginx was not reloaded")
    sys.exit(1)
sys.exit(subprocess.run(["systemctl", "reload-or-restart", "nginx"]).returncode)
