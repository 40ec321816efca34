"""The rendered Dockerfile, .dockerignore and compose.yaml: their structure, for every example playbook."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.config.loader import ConfigError, load, load_text
from deploy.config.model import Config
from deploy.config.secretfiles import NOT_SECRETS, PATTERNS
from deploy.render.render import render
from tests.unit.push.test_artifact import NOT_SECRET_FILES, SECRET_FILES

pytestmark = pytest.mark.unit

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"
ALL = sorted(PLAYBOOKS.glob("*.yaml")) + sorted(PLAYBOOKS.glob("*/deploy.yaml"))
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (the first list holds what comes before the first FROM)."""
    out: list[list[tuple[str, str]]] = [[]]
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            out.append([])
        out[-1].append(instruction)
    return out


def rendered(config: Config) -> dict[str, str]:
    return render(config)


@pytest.fixture(params=ALL, ids=lambda p: str(p.relative_to(PLAYBOOKS)))
def config(request: pytest.FixtureRequest) -> Config:
    return load(request.param)


def test_dockerfile_is_multi_stage_from_a_pinned_base_argument(config: Config) -> None:
    dockerfile = rendered(config)["Dockerfile"]
    before, *built = stages(dockerfile)
    assert ("ARG", f"BASE_IMAGE={config.docker.base_image}") in before
    image = config.docker.base_image
    assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image
    assert not image.endswith(":latest")
    assert [s[0] for s in built] == [("FROM", "${BASE_IMAGE} AS build"), ("FROM", "${BASE_IMAGE} AS runtime")]
    runtime = built[-1]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    # The runtime stage installs nothing itself: no pip, no compilers.
    assert not any(k == "RUN" and "pip" in a for k, a in runtime)


def test_build_stage_installs_pinned_requirements_without_pip_cache(config: Config) -> None:
    build = stages(rendered(config)["Dockerfile"])[1]
    assert ("COPY", f"{config.app.requirements} /tmp/requirements.txt") in build
    pip = [a for k, a in build if k == "RUN" and "pip install" in a]
    assert len(pip) == 1
    assert pip[0].startswith("pip install --no-cache-dir -r /tmp/requirements.txt")
    # pip by name (the venv's, first on PATH) so hadolint checks it (DL3013, DL3042).
    assert "PATH=/opt/venv/bin:$PATH" in " ".join(a for k, a in build if k == "ENV")
    assert "import gunicorn" in pip[0], "a build without gunicorn must fail with a clear message"


def test_runtime_runs_as_a_fixed_non_root_user(config: Config) -> None:
    runtime = stages(rendered(config)["Dockerfile"])[-1]
    users = [a for k, a in runtime if k == "USER"]
    assert users, "no USER: the container would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid == uid
    creation = next(a for k, a in runtime if k == "RUN" and "useradd" in a)
    assert f"--uid {uid}" in creation and creation.rstrip().endswith(config.docker.user)
    assert "/usr/sbin/nologin" in creation
    # Everything after USER runs unprivileged; nothing switches back.
    assert [k for k, _ in runtime].index("USER") > max(i for i, (k, _) in enumerate(runtime) if k == "RUN")


def test_cmd_is_exec_form_gunicorn_on_the_app_port(config: Config) -> None:
    runtime = stages(rendered(config)["Dockerfile"])[-1]
    cmds = [a for k, a in runtime if k == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])  # exec form is a JSON array; shell form would not parse
    assert argv[0].endswith("/gunicorn")
    assert argv[argv.index("--bind") + 1] == f"0.0.0.0:{config.app.port}"
    assert argv[argv.index("--config") + 1] == "/app/gunicorn.conf.py"
    assert argv[-1] == config.app.wsgi
    assert ("EXPOSE", str(config.app.port)) in runtime
    assert not any(k == "ENTRYPOINT" for k, _ in runtime)


def test_healthcheck_probes_the_health_path_with_python_not_curl(config: Config) -> None:
    runtime = stages(rendered(config)["Dockerfile"])[-1]
    checks = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0].endswith("/python")
    assert f"http://127.0.0.1:{config.app.port}{config.app.health}" in argv[-1]
    assert not re.search(r"\b(curl|wget)\b", checks[0])


def test_runtime_environment_is_production_and_holds_no_secrets(config: Config) -> None:
    dockerfile = rendered(config)["Dockerfile"]
    env = " ".join(a for k, a in stages(dockerfile)[-1] if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert "FLASK_DEBUG" not in dockerfile and "FLASK_ENV" not in dockerfile
    for keyword, args in instructions(dockerfile):
        if keyword in ("ARG", "ENV"):
            assert not SECRET_WORDS.search(args), f"{keyword} {args} looks like a secret baked into the image"
    for name in config.app.secrets:
        assert name not in dockerfile
    for key in config.app.env:
        assert key not in env, "app.env belongs to the run-time environment (compose.yaml)"


def test_shared_dirs_are_writable_by_the_app_user_only(config: Config) -> None:
    runtime = stages(rendered(config)["Dockerfile"])[-1]
    runs = " ".join(a for k, a in runtime if k == "RUN")
    for directory in config.app.shared:
        assert f"/app/{directory}" in runs
    assert ("COPY", ". /app") in runtime  # code copied without --chown: owned by root


def test_dockerignore_keeps_secrets_vcs_venvs_and_shared_data_out(config: Config) -> None:
    lines = [
        line for line in rendered(config)[".dockerignore"].splitlines() if line and not line.startswith("#")
    ]
    for required in ("**/.env", "**/.env.*", ".git", "**/.venv", "**/venv", "**/__pycache__", "**/*.pem",
                     "**/*.key", "**/id_ed25519*", "deploy-out"):
        assert required in lines
    for directory in config.app.shared:
        assert directory in lines
    for file in config.app.shared_files:  # a local copy (a development database) stays out too
        assert file in lines
    # Only the committed templates of environment files come back, after every secret pattern.
    exceptions = [line for line in lines if line.startswith("!")]
    assert exceptions == [f"!**/{name}" for name in NOT_SECRETS]
    assert lines.index(exceptions[0]) > max(lines.index(f"**/{p}") for p in PATTERNS)


def test_dockerignore_and_the_build_guard_use_the_one_secret_list(tmp_path: Path) -> None:
    """Every secret file the push withholds is in .dockerignore and stops the Dockerfile's guard (the
    real `find` runs it); a committed .env.example neither is ignored nor stops the build."""
    files = rendered(load(ALL[0]))
    lines = files[".dockerignore"].splitlines()
    for pattern in PATTERNS:
        assert f"**/{pattern}" in lines
    guard = next(a for k, a in stages(files["Dockerfile"])[-1] if k == "RUN" and "leaked=" in a)
    expression = re.search(r"find /app (.*?) -print -quit", guard)
    assert expression is not None
    for name in (*SECRET_FILES, ".git/HEAD"):
        context = tmp_path / name.replace("/", "_")
        (context / name).parent.mkdir(parents=True)
        (context / name).write_text("x\n")
        (context / "app.py").write_text("x\n")
        found = subprocess.run(
            ["sh", "-c", f"find {context} {expression.group(1)} -print"], capture_output=True, text=True
        )
        assert found.returncode == 0 and found.stdout.strip(), f"the guard misses {name}"
    clean = tmp_path / "clean"
    for name in NOT_SECRET_FILES:
        (clean / name).parent.mkdir(parents=True, exist_ok=True)
        (clean / name).write_text("x\n")
    found = subprocess.run(
        ["sh", "-c", f"find {clean} {expression.group(1)} -print"], capture_output=True, text=True
    )
    assert found.returncode == 0 and found.stdout == "", f"the guard stops a build for {found.stdout}"


def test_compose_reads_secrets_from_env_file_only(config: Config) -> None:
    app = yaml.safe_load(rendered(config)["compose.yaml"])["services"]["app"]
    assert app["env_file"] == [".env"]
    environment = app.get("environment", {})
    assert environment == dict(config.app.env)
    assert not set(config.app.secrets) & set(environment)
    assert not any(SECRET_WORDS.search(key) for key in environment)


def test_compose_service_is_hardened_and_restarts(config: Config) -> None:
    compose: dict[str, Any] = yaml.safe_load(rendered(config)["compose.yaml"])
    app = compose["services"]["app"]
    assert app["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert app["read_only"] is True
    assert "/tmp" in app["tmpfs"]
    assert app["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in app["security_opt"]
    assert app["restart"] == "unless-stopped"
    assert int(app["stop_grace_period"].rstrip("s")) > config.gunicorn.graceful_timeout
    assert app["ports"] == [f"127.0.0.1:{config.app.port}:{config.app.port}"]
    assert "user" not in app and "privileged" not in app


def test_compose_healthcheck_matches_the_image(config: Config) -> None:
    files = rendered(config)
    check = yaml.safe_load(files["compose.yaml"])["services"]["app"]["healthcheck"]
    assert check["test"][0] == "CMD"
    image_check = next(a for k, a in instructions(files["Dockerfile"]) if k == "HEALTHCHECK")
    assert check["test"][1:] == json.loads(image_check.partition(" CMD ")[2])


def test_compose_mounts_a_volume_for_each_shared_dir(config: Config) -> None:
    compose: dict[str, Any] = yaml.safe_load(rendered(config)["compose.yaml"])
    mounts = compose["services"]["app"].get("volumes", [])
    assert [m.split(":", 1)[1] for m in mounts] == [f"/app/{d}" for d in config.app.shared]
    names = [m.split(":", 1)[0] for m in mounts]
    assert sorted(names) == sorted(compose.get("volumes") or {})
    assert all(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", n) for n in names)


def test_rendering_is_byte_stable(config: Config) -> None:
    first, second = rendered(config), rendered(config)
    for name in ("Dockerfile", ".dockerignore", "compose.yaml"):
        assert first[name] == second[name]


MINIMAL = """
app:
  name: demo
  wsgi: {wsgi}
  env: {env}
  shared: [data/uploads, .cache]
server:
  domains: [demo.example.com]
docker: {docker}
"""


def _config(wsgi: str = '"demo:app"', env: str = "{}", docker: str = "{}") -> Config:
    return load_text(MINIMAL.format(wsgi=wsgi, env=env, docker=docker), "deploy.yaml")


def test_awkward_values_survive_quoting() -> None:
    wsgi = "demo:create_app(\"prod\", 'x\\\\y')"
    env = {"GREETING": 'it\'s "quoted" $HOME ${X} # not a comment: ok', "EMPTY": ""}
    config = _config(wsgi=json.dumps(wsgi), env=json.dumps(env))
    files = render(config)
    cmd = next(a for k, a in instructions(files["Dockerfile"]) if k == "CMD")
    assert json.loads(cmd)[-1] == wsgi
    environment = yaml.safe_load(files["compose.yaml"])["services"]["app"]["environment"]
    # Compose interpolates $: a literal $ must be written as $$.
    assert {k: v.replace("$$", "$") for k, v in environment.items()} == env
    assert all("$$" in v for v in environment.values() if "$" in v)


def test_nested_and_dotted_shared_dirs_get_valid_volume_names() -> None:
    compose = yaml.safe_load(render(_config())["compose.yaml"])
    mounts = compose["services"]["app"]["volumes"]
    assert mounts == ["demo-data-uploads:/app/data/uploads", "demo--cache:/app/.cache"]
    assert set(compose["volumes"]) == {"demo-data-uploads", "demo--cache"}


@pytest.mark.parametrize(
    ("docker", "message"),
    [
        ("{user: root}", "must not run as root"),
        ("{base_image: python}", "not pinned"),
        ("{base_image: 'python:latest'}", "not pinned"),
        ("{base_image: 'registry.local:5000/python'}", "not pinned"),
    ],
)
def test_unsafe_docker_settings_are_rejected(docker: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(docker=docker)
    assert message in str(caught.value)


def test_pinned_references_are_accepted() -> None:
    for image in ("registry.local:5000/python:3.11", "python@sha256:" + "a" * 64):
        assert _config(docker=json.dumps({"base_image": image})).docker.base_image == image
