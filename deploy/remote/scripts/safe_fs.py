import grp
import os
import pwd
import shutil
import stat
import sys

D = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
os.umask(0o022)
def refuse(why):
    print(f"deploy: refused: {why}")
    sys.exit(73)
def root_only(st):
    # Only root can add, rename or remove names in this folder (a sticky folder keeps root's names).
    return st.st_uid == 0 and (not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX))
def walk(path, create=False):
    # (fd of the folder `path`, whether every folder on the way is one only root changes)
    if not path.startswith("/") or "\0" in path:
        refuse(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p and p != "."]
    fd, done, safe, hops = os.open("/", D), "", True, 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            refuse(f"{path}: '..' in the path")
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=fd)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if st.st_uid != 0 or not root_only(os.fstat(fd)) or hops > 40:
                refuse(f"{done}/{name} is a symlink that a user other than root could have made "
                       f"(owner uid {st.st_uid}); deploy does not follow it")
            target = os.readlink(name, dir_fd=fd)
            parts = [p for p in os.path.normpath(os.path.join(done or "/", target)).split("/") if p] + parts
            os.close(fd)
            fd, done = os.open("/", D), ""
            continue
        if not stat.S_ISDIR(st.st_mode):
            refuse(f"{done}/{name} is not a directory")
        try:
            new = os.open(name, D, dir_fd=fd)
        except OSError as exc:
            refuse(f"{done}/{name} changed while deploy looked at it ({exc.strerror})")
        os.close(fd)
        fd, done = new, f"{done}/{name}"
        safe = safe and root_only(os.fstat(fd))
    return fd, safe
def main(op):
    if op == "dir":
        path, owner, group, mode = sys.argv[2:6]
        fd, _ = walk(path, create=True)
        os.fchown(fd, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        os.fchmod(fd, int(mode, 8))
    elif op == "file":
        path, owner, group, mode = sys.argv[2:6]
        folder, name = path.rstrip("/").rsplit("/", 1)
        fd, _ = walk(folder or "/")
        try:
            f = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                int(mode, 8),
                dir_fd=fd,
            )
        except OSError as exc:
            refuse(f"{path}: cannot open it as a file without following a link ({exc.strerror})")
        st = os.fstat(f)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            refuse(f"{path} is not a plain file of its own (a device, a pipe or a hard link)")
        os.fchown(f, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        os.fchmod(f, int(mode, 8))
        os.close(f)
    elif op == "rm":
        try:
            root, _ = walk(sys.argv[2])
        except FileNotFoundError:
            sys.exit(0)
        for rel in sys.argv[3:]:
            parts = [p for p in rel.split("/") if p and p != "."]
            if not parts or ".." in parts:
                refuse(f"{rel!r} is not a path inside {sys.argv[2]}")
            fd = os.dup(root)
            try:
                for name in parts[:-1]:
                    new = os.open(name, D, dir_fd=fd)
                    os.close(fd)
                    fd = new
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except OSError:
                # Missing, or reached through a link (ELOOP/ENOTDIR): not the release's own copy.
                os.close(fd)
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=fd)
            else:
                os.unlink(parts[-1], dir_fd=fd)
            os.close(fd)
    elif op == "prune":
        # Folders left empty under root (bottom-up), never through a link: a release is a copy of the
        # previous one, and git ships no empty folder, so an empty one is what deleted files left.
        try:
            root, _ = walk(sys.argv[2])
        except FileNotFoundError:
            sys.exit(0)
        for _top, dirs, _files, fd in os.fwalk(".", topdown=False, dir_fd=root, follow_symlinks=False):
            for name in dirs:
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    continue  # not empty, or a link to a folder (rmdir refuses it)
    elif op == "check":
        parent = os.path.dirname(sys.argv[2].rstrip("/")) or "/"
        try:
            fd, safe = walk(parent)
        except FileNotFoundError:
            refuse(f"{parent} does not exist")
        if not safe or os.fstat(fd).st_mode & 0o022:
            refuse(f"{parent} is a folder a user other than root can change; "
                   "deploy writes there only as root")
    else:
        refuse(f"unknown operation {op!r}")
op = sys.argv[1]
try:
    main(op)
except OSError as exc:
    # One line, as every other failure of a step: what could not be done, and the system's reason.
    print(f"deploy: {op} failed: {exc.filename or sys.argv[2]}: {exc.strerror or exc}")
    sys.exit(1)
