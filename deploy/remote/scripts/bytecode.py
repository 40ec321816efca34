import compileall
import importlib.util
import os
import re
import sys

# Compiles a new venv's bytecode once its release serves (deploy.remote.bytecode; run as root by the
# venv's own Python, so the .pyc carry its tag). With uv (a cache given), the unpacked wheels in uv's
# cache are compiled first and their .pyc hard-linked into the venv beside the very files uv linked
# from there (same inode, so the same mtime and size the .pyc records): the next venv uv fills from
# that cache gets them at install time. Then whatever is left in the venv is compiled. Every .pyc is
# written to a temporary name and renamed into place (compileall does the same), so a release that
# imports meanwhile reads a whole file or none. The marker is written only when this ran to its end.
# A wheel's `<name>.data/` folder (scripts, headers, data) is left alone in the cache: uv refuses a
# wheel whose scripts folder holds a directory, so a `__pycache__` there would break every later venv.
venv, cache, marker = sys.argv[1], sys.argv[2], sys.argv[3]
if os.path.exists(marker):
    sys.exit(0)
lib = os.path.join(venv, "lib")


def sources(root):
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def link_from(archives):
    compiled = {}
    for path in sources(archives):
        pyc = importlib.util.cache_from_source(path)
        if os.path.exists(pyc):
            stat = os.stat(path)
            compiled[(stat.st_dev, stat.st_ino)] = pyc
    linked = 0
    for path in sources(lib):
        stat = os.stat(path)
        found = compiled.get((stat.st_dev, stat.st_ino))
        target = importlib.util.cache_from_source(path)
        if found is None or os.path.exists(target):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{target}.{os.getpid()}.tmp"
        os.link(found, temporary)
        os.replace(temporary, target)
        linked += 1
    return linked


if cache:
    archives = os.path.join(cache, "archive-v0")
    if os.path.isdir(archives):
        wheel_data = re.compile(re.escape(archives) + r"/[^/]+/[^/]+\.data/")
        compileall.compile_dir(archives, quiet=2, workers=0, rx=wheel_data)
        link_from(archives)
compileall.compile_dir(lib, quiet=2, workers=0)
with open(marker, "w"):
    pass
