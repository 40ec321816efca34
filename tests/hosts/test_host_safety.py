"""What root does on a host never hands the app user more than its own folders, never loses shared
data, and never leaves a broken Nginx configuration behind (one private sandbox host, in file order)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, get, git, make_project, private_sandbox

pytestmark = pytest.mark.hosts

BASE = "/srv/flaskr"
SHARED = f"{BASE}/shared/instance"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "safety-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("safety-project"), box.hosts())


def sh(box: Sandbox, project: Project, script: str) -> str:
    result = box.run(project.hosts[0], ["sh", "-c", script], check=True)
    return result.stdout


def as_app(box: Sandbox, project: Project, script: str) -> str:
    """Run `script` on the host as the app user (what the app, or code it is tricked into running, does)."""
    return sh(box, project, f"runuser -u flaskr -- sh -c {_quote(script)}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def stat(box: Sandbox, project: Project, *paths: str) -> list[str]:
    return sh(box, project, "stat -c '%U:%G %a %n' -- " + " ".join(paths)).split("\n")[: len(paths)]


def test_root_never_follows_a_link_the_app_planted_and_shared_data_survives(
    box: Sandbox, project: Project
) -> None:
    # The project tracks a file inside its shared folder; the app later writes its own file there
    # under that name. A push that drops or changes the tracked file must not touch the app's file.
    (project.path / "instance").mkdir()
    (project.path / "instance" / "notes.txt").write_text("shipped\n")
    git(project.path, "add", "-f", "instance/notes.txt")
    project.commit("a tracked file in the shared folder")
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    canaries = "/etc/shadow /root/canary /root/canary-dir"
    sh(
        box,
        project,
        "echo root > /root/canary && chmod 0600 /root/canary && mkdir -p -m 0700 /root/canary-dir",
    )
    before = stat(box, project, *canaries.split())
    as_app(
        box,
        project,
        f"echo app-data > {SHARED}/notes.txt && echo db > {SHARED}/flaskr.sqlite.bak && "
        f"ln -s /etc/shadow {SHARED}/uploads && ln -s /root/canary {SHARED}/notes.txt.deploy-tmp && "
        f"ln -s /root/canary-dir {SHARED}/cache",
    )
    (project.path / "instance" / "notes.txt").write_text("shipped v2\n")
    project.set_version("v2")
    project.deploy("push", check=True)
    git(project.path, "rm", "-q", "instance/notes.txt")
    project.set_version("v3")
    project.deploy("push", check=True)
    project.deploy("setup", check=True)
    assert stat(box, project, *canaries.split()) == before
    assert sh(box, project, f"cat {SHARED}/notes.txt {SHARED}/flaskr.sqlite.bak") == "app-data\ndb\n"
    assert sh(box, project, f"readlink {BASE}/current/instance") == f"{SHARED}\n"
    assert get(project.hosts[0].address)[0] == 200


def test_overlapping_shared_folders_never_hand_the_app_a_root_file(box: Sandbox, project: Project) -> None:
    """shared: [instance, instance/uploads]: uploads lives inside a folder the app owns. Whether the
    config is refused up front or accepted, root never follows the app's link there."""
    before = stat(box, project, "/root/canary-dir", "/etc/shadow")
    as_app(box, project, f"rm -f {SHARED}/uploads && ln -s /root/canary-dir {SHARED}/uploads")
    text = (project.path / "deploy.yaml").read_text()
    (project.path / "deploy.yaml").write_text(
        text.replace("shared: [instance]", "shared: [instance, instance/uploads]")
    )
    project.commit("overlapping shared folders")
    setup = project.deploy("setup")
    push = project.deploy("push")
    assert stat(box, project, "/root/canary-dir", "/etc/shadow") == before
    if setup.returncode == 2:  # refused by validation: nothing ran
        assert push.returncode == 2
    else:
        assert "is a symlink that a user other than root could have made" in setup.stdout + setup.stderr
    assert sh(box, project, f"cat {SHARED}/notes.txt") == "app-data\n"
    as_app(box, project, f"rm -f {SHARED}/uploads")
    project.write_config()
    project.commit("shared folders as before")


NGINX_FILES = (
    "/etc/nginx/sites-available/flaskr.conf",
    "/etc/nginx/snippets/flaskr-proxy.conf",
    "/etc/nginx/snippets/flaskr-security-headers.conf",
    "/etc/nginx/conf.d/deploy-catch-all.conf",
)


def nginx_state(box: Sandbox, project: Project) -> str:
    """Every Nginx file deploy manages, byte for byte, with mode and owner, and the site's link."""
    return sh(
        box,
        project,
        "cd /etc/nginx && sha256sum "
        + " ".join(NGINX_FILES)
        + " && stat -c '%U:%G %a %n' "
        + " ".join(NGINX_FILES)
        + " && readlink sites-enabled/flaskr.conf && ls -a sites-enabled conf.d snippets",
    )


def test_a_configuration_nginx_rejects_leaves_the_previous_files_and_site(
    box: Sandbox, project: Project
) -> None:
    from deploy.render.render import _environment  # the shipped template, to break one line of it

    before = nginx_state(box, project)
    shipped = _environment(None).loader.get_source(_environment(None), "nginx-proxy.conf.j2")[0]  # type: ignore[union-attr]
    templates = project.path / "templates"
    templates.mkdir()
    (templates / "nginx-proxy.conf.j2").write_text(shipped + "proxy_bogus_directive on;\n")
    project.commit("a template override Nginx rejects")
    for command in ("setup", "push"):
        result = project.deploy(command)
        out = result.stdout + result.stderr
        assert result.returncode != 0, out
        assert 'unknown directive "proxy_bogus_directive"' in out
        assert "the previous Nginx files are back in place" in out
        assert nginx_state(box, project) == before
    sh(box, project, "systemctl restart nginx")
    assert get(project.hosts[0].address)[0] == 200
    (templates / "nginx-proxy.conf.j2").unlink()
    templates.rmdir()
    project.commit("the shipped template again")


def test_setup_refuses_an_existing_folder_that_is_not_deploys(box: Sandbox, project: Project) -> None:
    """server.base_dir naming a folder someone else uses (here /tmp-like: 1777, with a file in it):
    refused before anything changes, not even the lock's folder is made."""
    foreign = "/srv/foreign"
    sh(box, project, f"mkdir -p {foreign} && chmod 1777 {foreign} && echo theirs > {foreign}/data")
    before = sh(box, project, f"stat -c '%U:%G %a %n' {foreign} {foreign}/data && ls -a {foreign}")
    text = (project.path / "deploy.yaml").read_text()
    (project.path / "deploy.yaml").write_text(
        text.replace("  user: flaskr\n", f"  user: flaskr\n  base_dir: {foreign}\n")
    )
    result = project.deploy("setup")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    address = project.hosts[0].address
    assert f"{address}: {foreign} already exists and is not deploy's (it holds data; its mode is 1777" in out
    assert sh(box, project, f"stat -c '%U:%G %a %n' {foreign} {foreign}/data && ls -a {foreign}") == before
    project.write_config()


def test_the_env_file_is_root_only_and_the_app_cannot_rewrite_it(box: Sandbox, project: Project) -> None:
    """A host set up when the app user owned its env file is fixed by the next setup; the app still
    gets its secrets (systemd reads the file as root) and cannot write the file."""
    sh(box, project, "chown flaskr:flaskr /etc/flaskr/env")
    project.deploy("setup", check=True)
    assert stat(box, project, "/etc/flaskr", "/etc/flaskr/env") == [
        "root:root 755 /etc/flaskr",
        "root:root 600 /etc/flaskr/env",
    ]
    denied = box.run(
        project.hosts[0], ["runuser", "-u", "flaskr", "--", "sh", "-c", "echo X=1 >> /etc/flaskr/env"]
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    project.set_version("v-env")
    project.deploy("push", check=True)
    # The app reads SECRET_KEY from its environment: sessions work, so the secret arrived.
    slot = sh(box, project, "readlink /srv/flaskr/live.sock").strip().rsplit("/", 1)[-1].removesuffix(".sock")
    pid = sh(box, project, f"systemctl show -p MainPID --value flaskr@{slot}.service").strip()
    environ = sh(box, project, f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert "SECRET_KEY=test-secret-key-0123456789abcdef" in environ
