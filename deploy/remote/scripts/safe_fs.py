import grp
import os
import pwd
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
def ids(owner, group):
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        print(f"deploy: no user {owner!r} or no group {group!r} on this host")
        sys.exit(1)
def unlink_if_there(name, fd):
    # (contextlib would cost its imports at every start)
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        return False
    return True
def safe_parent(path):
    # (fd of path's folder, path's name there), refusing unless only root can change that folder and
    # every folder on the way to it.
    folder, _, name = path.rstrip("/").rpartition("/")
    folder = folder or "/"
    try:
        fd, safe = walk(folder)
    except FileNotFoundError:
        refuse(f"{folder} does not exist")
    if not safe or os.fstat(fd).st_mode & 0o022:
        refuse(f"{folder} is a folder a user other than root can change; deploy writes there only as root")
    return fd, name
def stdin_chunks(encoding):
    # Standard input's bytes (decoded when encoding is base64); bytes that are not base64 give none.
    if encoding != "base64":
        return iter(lambda: sys.stdin.buffer.read(1 << 20), b"")
    return base64_chunks(sys.stdin.buffer.read())
def base64_chunks(text):
    # Imported here: the other operations start faster without it.
    import binascii

    try:
        return [binascii.a2b_base64(text)]
    except binascii.Error:
        return []
def write(path, mode, owner, group, digest, chunks):
    # The bytes of chunks to path: written under a temporary name, renamed over path only once they
    # have the SHA-256 digest (which also pins their length). Imported here: the other operations
    # start faster without hashlib.
    import hashlib
    fd, name = safe_parent(path)
    tmp = name + ".deploy-tmp"
    uid, gid = ids(owner, group)
    unlink_if_there(tmp, fd)
    f = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
    sha = hashlib.sha256()
    try:
        for chunk in chunks:
            sha.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(f, view):]
        os.fchown(f, uid, gid)
        os.fchmod(f, int(mode, 8))
    except OSError as exc:
        print(f"deploy: write failed: {path}: {exc.strerror or exc}")
        digest = ""
    finally:
        os.close(f)
    if sha.hexdigest() != digest:
        os.unlink(tmp, dir_fd=fd)
        print(f"{path}: incomplete upload (the bytes written do not match their SHA-256)")
        sys.exit(74)
    os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
def link(target, path):
    # path becomes a symlink to target: made under a temporary name, renamed over the old one (atomic).
    fd, name = safe_parent(path)
    tmp = name + ".deploy-tmp"
    unlink_if_there(tmp, fd)
    os.symlink(target, tmp, dir_fd=fd)
    os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
def main(op, payload=None):
    if op == "dir":
        path, owner, group, mode = sys.argv[2:6]
        uid, gid = ids(owner, group)
        fd, _ = walk(path, create=True)
        os.fchown(fd, uid, gid)
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
        os.fchown(f, *ids(owner, group))
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
                # Imported only here: it costs every other operation 5 ms of start-up.
                import shutil

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
        safe_parent(sys.argv[2])
    elif op == "write":
        path, mode, owner, group, digest = sys.argv[2:7]
        encoding = sys.argv[7] if len(sys.argv) > 7 else ""
        write(path, mode, owner, group, digest, stdin_chunks(encoding) if payload is None else payload)
    elif op == "link":
        link(sys.argv[2], sys.argv[3])
    else:
        refuse(f"unknown operation {op!r}")
def run(argv, payload=None):
    # One operation; its exit status.
    sys.argv = ["safe_fs", *argv]
    try:
        main(argv[0], payload)
    except SystemExit as exc:
        return exc.code or 0
    except OSError as exc:
        # One line, as every other failure of a step: what could not be done, and the system's reason.
        print(f"deploy: {argv[0]} failed: {exc.filename or ''.join(argv[1:2])}: {exc.strerror or exc}")
        return 1
    return 0
def batch():
    # Several operations of one step in one program (each python3 start costs the host 6 ms), read from
    # standard input as deploy.remote.stepscript writes them: a line with their number, then per
    # operation a line "INDEX xHEX... ;" (its arguments, each UTF-8 in hex after an x) and, for a write,
    # its bytes in base64 lines ended by a line "@@". The first that fails ends the batch with the
    # step script's failure line for its INDEX.
    lines = iter(sys.stdin.buffer)
    expected, done = next(lines, b"").strip(), 0
    for line in lines:
        try:
            index, *fields, end = line.split()
            argv = [bytes.fromhex(field[1:].decode()).decode() for field in fields]
            op = argv[0]
            if end != b";":
                raise ValueError(end)
        except (ValueError, IndexError):
            break  # a line cut short: counted as missing below
        payload = None
        if op == "write":
            data = []
            for part in lines:
                if part.rstrip(b"\n") == b"@@":
                    break
                data.append(part)
            payload = base64_chunks(b"".join(data))
        code = run(argv, payload)
        if code:
            print(f"@@deploy-failed {index.decode()} {code}")
            sys.exit(code)
        done += 1
    if str(done).encode() != expected:
        print(f"deploy: the step's script arrived cut short ({done} of {expected.decode()} operations)")
        sys.exit(74)
if sys.argv[1] == "batch":
    batch()
else:
    sys.exit(run(sys.argv[1:]))
