"""The release `deploy push` does, as a pyinfra deploy written the usual way.
Same steps as ../ansible/deploy.yml.

Run: RELEASE=<commit> PROJECT=<git checkout> WHEELHOUSE=<dir> SECRET_KEY=... \
     pyinfra -y inventory.py deploy.py
"""

import io
import os
import subprocess
from pathlib import Path

from pyinfra.operations import files, pip, server, systemd
from pyinfra.operations.util import any_changed

NAME = "flaskr-pyinfra"
USER = "flaskralt"
BASE = "/srv/flaskr-pyinfra"
RELEASE = os.environ["RELEASE"]
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
RELEASE_DIR = f"{BASE}/releases/{RELEASE}"
VARS = {"app": NAME, "app_user": USER, "base": BASE, "server_name": "pyinfra.flaskr.test"}

tarball = f"/tmp/{NAME}-{RELEASE}.tar.gz"
if not os.path.exists(tarball):
    subprocess.run(
        ["git", "-C", os.environ["PROJECT"], "archive", "--format=tar.gz", "-o", tarball, RELEASE], check=True
    )

server.user(name="App user", user=USER, system=True, create_home=False)
for path in (f"{BASE}/releases", f"{BASE}/wheels", RELEASE_DIR):
    files.directory(name=f"Directory {path}", path=path, mode="755")

wheelhouse = Path(os.environ["WHEELHOUSE"])
for wheel in sorted(wheelhouse.glob("*.whl")):
    files.put(name=f"Wheel {wheel.name}", src=str(wheel), dest=f"{BASE}/wheels/{wheel.name}", mode="644")

files.directory(name="Instance folder", path=f"{BASE}/shared/instance", user=USER, mode="750")
code = files.unarchive(name="Code", src=tarball, dest=RELEASE_DIR, creates=f"{RELEASE_DIR}/requirements.txt")
requirements = pip.packages(
    name="Requirements",
    requirements=f"{RELEASE_DIR}/requirements.txt",
    virtualenv=f"{BASE}/venv",
    virtualenv_kwargs={"venv": True, "python": "python3"},
    extra_install_args=f"--no-index --find-links {BASE}/wheels",
)
files.link(name="Instance link", path=f"{RELEASE_DIR}/instance", target=f"{BASE}/shared/instance")
settings = files.template(
    name="Gunicorn settings",
    src=str(TEMPLATES / "gunicorn.conf.py.j2"),
    dest=f"{RELEASE_DIR}/gunicorn.conf.py",
    mode="644",
    **VARS,
)
secrets = files.put(
    name="Secrets",
    src=io.StringIO(f"SECRET_KEY={os.environ['SECRET_KEY']}\n"),
    dest=f"/etc/{NAME}.env",
    mode="600",
)
unit = files.template(
    name="Systemd unit",
    src=str(TEMPLATES / "app.service.j2"),
    dest=f"/etc/systemd/system/{NAME}.service",
    mode="644",
    **VARS,
)
server.shell(
    name="Release command (migrations)",
    commands=[
        f"cd {RELEASE_DIR} && set -a && . /etc/{NAME}.env && set +a && "
        f"runuser -u {USER} -- {BASE}/venv/bin/flask --app flaskr init-db"
    ],
)
current = files.link(name="Current release", path=f"{BASE}/current", target=RELEASE_DIR)
site = files.template(
    name="Nginx site",
    src=str(TEMPLATES / "nginx-site.conf.j2"),
    dest=f"/etc/nginx/sites-enabled/{NAME}.conf",
    mode="644",
    **VARS,
)

systemd.service(name="App running", service=NAME, running=True, enabled=True, daemon_reload=True)
systemd.service(
    name="Restart app",
    service=NAME,
    restarted=True,
    daemon_reload=True,
    _if=any_changed(code, requirements, settings, secrets, unit, current),
)
systemd.service(name="Reload nginx", service="nginx", reloaded=True, _if=site.did_change)
