"""Rendering: byte-stable output, golden files, version-aware Nginx, HTTP-only fallbacks, overrides."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from deploy.config.loader import ConfigError, load, load_text
from deploy.config.model import Config
from deploy.layout import CATCH_ALL, CATCH_ALL_TLS, paths_for
from deploy.remote.facts import HostFacts
from deploy.render.render import render

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = sorted([*ROOT.glob("playbooks/*.yaml"), *ROOT.glob("playbooks/*/deploy.yaml")])
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
#: The files this suite keeps golden copies of (the Docker files have their own tests).
GOLDEN_PREFIXES = ("gunicorn.conf.py", "nginx/", "systemd/")

FLASKR = """\
app:
  name: flaskr
  wsgi: "flaskr:create_app()"
  static: {url: /static, dir: flaskr/static}
  secrets: [SECRET_KEY]
server:
  domains: [flaskr.example.com, www.flaskr.example.com]
  user: flaskr
  tls: {email: ops@example.com}
"""


def playbook_id(path: Path) -> str:
    return path.parent.name if path.name == "deploy.yaml" else path.stem


def config(text: str = FLASKR, extra: str = "") -> Config:
    return load_text(textwrap.dedent(text) + textwrap.dedent(extra), "deploy.yaml", None)


def site(cfg: Config, facts: HostFacts | None = None) -> str:
    return render(cfg, facts)[f"nginx/{cfg.app.name}.conf"]


def blocks(text: str, keyword: str) -> list[str]:
    """The bodies of every `keyword ... { ... }` block of an Nginx file (nested blocks included)."""
    out = []
    for match in re.finditer(rf"^\s*{keyword}\b[^{{;]*\{{", text, re.M):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append(text[match.end() : i - 1])
    return out


# --- stability and golden files -----------------------------------------------------------------


@pytest.mark.parametrize("path", PLAYBOOKS, ids=playbook_id)
def test_every_playbook_renders_the_same_bytes_twice(path: Path) -> None:
    first = render(load(path, None), None, path.parent)
    second = render(load(path, None), None, path.parent)
    assert first == second
    for name, text in first.items():
        assert text.endswith("\n") and "None" not in text.replace("NoNewPrivileges", ""), name


@pytest.mark.parametrize("path", PLAYBOOKS, ids=playbook_id)
@pytest.mark.parametrize(
    "facts",
    [
        HostFacts(has_certificate=False),
        HostFacts(cores=4, nginx_version="1.26.2"),
        HostFacts(nginx_version="1.18.0"),
    ],
    ids=["no-certificate", "nginx-1.26", "nginx-1.18"],
)
def test_every_playbook_renders_for_other_hosts(path: Path, facts: HostFacts) -> None:
    files = render(load(path, None), facts, path.parent)
    assert all(text.strip() for text in files.values())


@pytest.mark.parametrize("path", PLAYBOOKS, ids=playbook_id)
def test_golden_files(path: Path) -> None:
    """Render output equals tests/unit/golden/<playbook>/; UPDATE_GOLDEN=1 rewrites them."""
    files = {
        name: text
        for name, text in render(load(path, None), None, path.parent).items()
        if name.startswith(GOLDEN_PREFIXES)
    }
    folder = GOLDEN / playbook_id(path)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
    on_disk = {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()
    }
    assert on_disk == files, "rendered files differ from golden ones: rerun with UPDATE_GOLDEN=1 and review"


# --- nginx -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "http2_on"),
    [("1.22.1", False), ("1.24.0", False), ("1.25.0", False), ("1.25.1", True), ("1.27.3", True)],
)
def test_http2_directive_fits_the_nginx_version(version: str, http2_on: bool) -> None:
    files = render(config(), HostFacts(nginx_version=version))
    text = files["nginx/flaskr.conf"] + files[CATCH_ALL_TLS]
    listens = re.findall(r"^\s*listen\s+[^;]*443[^;]*;", text, re.M)
    assert len(listens) == 4  # catch-all and site, IPv4 and IPv6
    if http2_on:
        assert text.count("http2 on;") == 2
        assert not any("http2" in line for line in listens)
    else:
        assert "http2 on;" not in text
        assert all(re.search(r"\bssl http2\b", line) for line in listens)


def test_https_site_tls_settings_and_redirect() -> None:
    text = site(config())
    https = [
        b for b in blocks(text, "server") if "server_name flaskr.example.com" in b and "ssl_certificate" in b
    ]
    assert len(https) == 1
    body = https[0]
    assert "ssl_certificate /etc/letsencrypt/live/flaskr.example.com/fullchain.pem;" in body
    assert "ssl_certificate_key /etc/letsencrypt/live/flaskr.example.com/privkey.pem;" in body
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in body
    assert "ssl_ecdh_curve X25519:prime256v1:secp384r1;" in body
    assert "ssl_session_tickets off;" in body and "ssl_session_cache shared:" in body
    ciphers = re.search(r"ssl_ciphers ([^;]+);", body)
    assert ciphers and all(
        c.startswith("ECDHE-") and ("GCM" in c or "POLY1305" in c) for c in ciphers[1].split(":")
    )
    assert "ssl_dhparam" not in text and "ssl_stapling" not in text
    assert "server_name flaskr.example.com www.flaskr.example.com;" in body
    redirect = [b for b in blocks(text, "server") if "return 301 https://$host$request_uri;" in b]
    assert len(redirect) == 1 and "location ^~ /.well-known/acme-challenge/" in redirect[0]
    assert "root /var/lib/deploy/acme;" in redirect[0]


def test_catch_all_servers_answer_nothing() -> None:
    files = render(config())
    assert "default_server" not in files["nginx/flaskr.conf"]  # so that several apps can share a host
    (http,) = blocks(files[CATCH_ALL], "server")
    assert "return 444;" in http and "listen 80 default_server;" in http
    assert "listen [::]:80 default_server;" in http
    (https,) = blocks(files[CATCH_ALL_TLS], "server")
    assert "listen 443 ssl http2 default_server;" in https
    assert "ssl_reject_handshake on;" in https and "return 421;" in https and "ssl_certificate" not in https
    old = render(config(), HostFacts(nginx_version="1.18.0"))  # no ssl_reject_handshake before 1.19.4
    assert "ssl_reject_handshake" not in old[CATCH_ALL_TLS] and "return 444;" in old[CATCH_ALL_TLS]
    assert "ssl_certificate /etc/letsencrypt/live/flaskr.example.com/fullchain.pem;" in old[CATCH_ALL_TLS]


def test_the_tls_catch_all_comes_with_https_only() -> None:
    before_certificate = render(config(), HostFacts(has_certificate=False))
    assert CATCH_ALL in before_certificate and CATCH_ALL_TLS not in before_certificate
    plain = render(config(FLASKR.replace("tls: {email: ops@example.com}", "tls: false")))
    assert CATCH_ALL_TLS not in plain and "443" not in plain[CATCH_ALL]


def test_every_app_renders_the_same_catch_all_files() -> None:
    """Several apps on one host each install the shared default servers: the files must not differ."""
    other = FLASKR.replace("name: flaskr", "name: notes").replace("user: flaskr", "user: notes")
    other = other.replace("flaskr.example.com, www.flaskr.example.com", "notes.example.org")
    mine, theirs = render(config()), render(config(other))
    assert mine[CATCH_ALL] == theirs[CATCH_ALL] and mine[CATCH_ALL_TLS] == theirs[CATCH_ALL_TLS]
    assert "flaskr" not in mine[CATCH_ALL] + mine[CATCH_ALL_TLS]
    assert mine["nginx/flaskr.conf"] != theirs["nginx/notes.conf"]


def test_every_block_that_adds_headers_includes_the_security_headers() -> None:
    cfg = config()
    files = render(cfg)
    text = files["nginx/flaskr.conf"]
    headers_file = f"{paths_for(cfg).nginx_snippets}/flaskr-security-headers.conf"
    for keyword in ("location", "server"):
        for body in blocks(text, keyword):
            own = re.sub(r"location[^{]*\{[^}]*\}", "", body)  # the block itself, not nested locations
            if "add_header" in own:
                assert f"include {headers_file};" in own, body
    app_server = next(b for b in blocks(text, "server") if "proxy_pass" in b)
    assert f"include {headers_file};" in re.sub(r"location[^{]*\{[^}]*\}", "", app_server)
    headers = files["nginx/snippets/flaskr-security-headers.conf"]
    lines = [line for line in headers.splitlines() if line.startswith("add_header")]
    assert all(line.endswith(" always;") for line in lines)
    assert [line.split()[1] for line in lines] == [
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
        "Cross-Origin-Opener-Policy",
    ]
    assert 'Strict-Transport-Security "max-age=63072000; includeSubDomains"' in headers
    assert 'Referrer-Policy "strict-origin-when-cross-origin"' in headers
    assert "X-XSS-Protection" not in "".join(files.values())


def test_static_files_alias_and_caching() -> None:
    text = site(config())
    static = [b for b in blocks(text, "location") if "alias" in b]
    assert len(static) == 1
    assert "alias /srv/flaskr/current/flaskr/static/;" in static[0]
    assert 'add_header Cache-Control "public, max-age=31536000, immutable";' in static[0]
    assert re.search(r"location /static/ \{", text)


def test_config_values_reach_nginx() -> None:
    cfg = config(
        extra="""\
        nginx:
          client_max_body_size: 3m
          hsts_max_age: 600
          content_security_policy: "default-src 'none'"
          extra_headers: {Permissions-Policy: "camera=()"}
        gunicorn: {timeout: 50}
        """
    )
    files = render(cfg)
    assert "client_max_body_size 3m;" in files["nginx/flaskr.conf"]
    headers = files["nginx/snippets/flaskr-security-headers.conf"]
    assert 'add_header Strict-Transport-Security "max-age=600; includeSubDomains" always;' in headers
    assert "add_header Content-Security-Policy \"default-src 'none'\" always;" in headers
    assert 'add_header Permissions-Policy "camera=()" always;' in headers
    proxy = files["nginx/snippets/flaskr-proxy.conf"]
    assert "proxy_read_timeout 55s;" in proxy  # longer than Gunicorn's 50 s
    for line in (
        "proxy_buffering on;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-ID $request_id;",
        'proxy_set_header X-Forwarded-Ssl "";',
    ):
        assert line in proxy
    assert (
        "upstream flaskr_app {\n    server unix:/srv/flaskr/live.sock fail_timeout=0;\n}"
        in files["nginx/flaskr.conf"]
    )


def test_no_certificate_yet_serves_http_with_the_acme_path() -> None:
    files = render(config(), HostFacts(has_certificate=False))
    text = files["nginx/flaskr.conf"]
    assert "443" not in text and "ssl_" not in text and "return 301" not in text
    assert "location ^~ /.well-known/acme-challenge/" in text and "proxy_pass http://flaskr_app;" in text
    assert "Strict-Transport-Security" not in files["nginx/snippets/flaskr-security-headers.conf"]


def test_tls_false_is_http_only_without_acme_or_hsts() -> None:
    files = render(config(FLASKR.replace("tls: {email: ops@example.com}", "tls: false")))
    text = files["nginx/flaskr.conf"]
    assert "443" not in text and "acme-challenge" not in text and "return 301" not in text
    assert "Strict-Transport-Security" not in files["nginx/snippets/flaskr-security-headers.conf"]
    assert (
        paths_for(config(FLASKR.replace("tls: {email: ops@example.com}", "tls: false"))).tls_certificate
        is None
    )


def test_own_certificate_is_read_from_the_app_folder() -> None:
    cfg = config(
        FLASKR.replace("tls: {email: ops@example.com}", "tls: {cert: certs/full.pem, key: certs/key.pem}")
    )
    text = site(cfg)
    assert "ssl_certificate /etc/flaskr/tls/fullchain.pem;" in text
    assert "ssl_certificate_key /etc/flaskr/tls/privkey.pem;" in text


# --- gunicorn ----------------------------------------------------------------------------------


def gunicorn_settings(text: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(text, "gunicorn.conf.py", "exec"), namespace)  # the rendered file is plain Python
    return namespace


def test_workers_are_decided_on_the_host_when_cores_are_unknown() -> None:
    text = render(config())["gunicorn.conf.py"]
    assert "workers = len(os.sched_getaffinity(0)) * 2 + 1" in text
    assert gunicorn_settings(text)["workers"] == len(os.sched_getaffinity(0)) * 2 + 1


@pytest.mark.parametrize(
    ("extra", "facts", "workers"),
    [
        ("", HostFacts(cores=4), 9),
        ("server: {cores: 3}\n", HostFacts(), 7),
        ("server: {cores: 3}\n", HostFacts(cores=1), 3),  # the host's own count wins
        ("gunicorn: {workers: 2}\n", HostFacts(cores=8), 2),
    ],
)
def test_workers_literal_when_known(extra: str, facts: HostFacts, workers: int) -> None:
    text = FLASKR
    if extra.startswith("server"):
        text = text.replace("  user: flaskr\n", "  user: flaskr\n  cores: 3\n")
        extra = ""
    rendered = render(config(text, extra), facts)["gunicorn.conf.py"]
    assert f"\nworkers = {workers}\n" in rendered
    assert gunicorn_settings(rendered)["workers"] == workers


def test_gunicorn_settings_follow_the_config() -> None:
    cfg = config(
        extra="gunicorn: {timeout: 45, graceful_timeout: 20, preload_app: true,"
        " max_requests: 500, max_requests_jitter: 50}\n"
    )
    settings = gunicorn_settings(render(cfg)["gunicorn.conf.py"])
    assert settings["timeout"] == 45 and settings["graceful_timeout"] == 20
    assert settings["preload_app"] is True
    assert settings["max_requests"] == 500 and settings["max_requests_jitter"] == 50
    assert settings["worker_tmp_dir"] == "/dev/shm" and settings["umask"] == 0o007
    assert "accesslog" not in settings and settings["errorlog"] == "-"  # Nginx logs requests
    assert "%(M)s" in str(settings["access_log_format"])
    assert settings["forwarded_allow_ips"] == "" and settings["forwarder_headers"] == ""
    assert settings["secure_scheme_headers"] == {"X-FORWARDED-PROTO": "https"}
    assert "SECRET_KEY" not in render(cfg)["gunicorn.conf.py"]


# --- systemd -----------------------------------------------------------------------------------


def unit(cfg: Config) -> str:
    return render(cfg)[f"systemd/{cfg.app.name}@.service"]


def directives(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in text.splitlines() if re.match(r"^[A-Z]\w*=", line)]  # type: ignore[misc]


def test_unit_runs_one_slot_as_the_app_user() -> None:
    text = unit(config())
    found = dict(directives(text))
    assert found["User"] == found["Group"] == "flaskr"
    assert found["Type"] == "notify" and found["NotifyAccess"] == "main"
    assert found["WorkingDirectory"] == "/srv/flaskr/slots/%i"
    assert found["ExecStart"] == (
        "/srv/flaskr/slots/%i/.venv/bin/gunicorn -c /srv/flaskr/slots/%i/gunicorn.conf.py"
        ' --bind unix:/run/flaskr/%i.sock "flaskr:create_app()"'
    )
    # No --control-socket flag: Gunicorn before 25.1 would refuse to start with it.
    assert "--control-socket" not in text
    assert ("Environment", "DEPLOY_SLOT=%i") in directives(text)
    assert found["EnvironmentFile"] == "/etc/flaskr/env"
    assert found["RuntimeDirectory"] == "flaskr" and found["RuntimeDirectoryPreserve"] == "yes"
    assert found["ReadWritePaths"] == "/srv/flaskr/shared"
    assert found["Restart"] == "on-failure"
    assert int(found["TimeoutStopSec"]) > 30  # longer than graceful_timeout


def test_stop_timeout_follows_graceful_timeout() -> None:
    found = dict(directives(unit(config(extra="gunicorn: {graceful_timeout: 120}\n"))))
    assert int(found["TimeoutStopSec"]) > 120


def test_hardening_overrides_replace_defaults() -> None:
    text = unit(config(extra='systemd: {overrides: {MemoryDenyWriteExecute: "false", IPAddressDeny: any}}\n'))
    found = directives(text)
    assert ("MemoryDenyWriteExecute", "false") in found
    assert ("MemoryDenyWriteExecute", "yes") not in found
    assert ("IPAddressDeny", "any") in found
    assert ("NoNewPrivileges", "yes") in found


def test_environment_values_are_quoted_for_systemd() -> None:
    cfg = config(
        FLASKR.replace(
            "  secrets:",
            '  env: {GREETING: "hello \\"world\\"", RATIO: "50%", HOME_REF: "$HOME"}\n  secrets:',
        )
    )
    found = directives(unit(cfg))
    assert ("Environment", '"GREETING=hello \\"world\\""') in found
    assert ("Environment", '"RATIO=50%%"') in found
    assert ("Environment", '"HOME_REF=$HOME"') in found


def test_no_secrets_means_optional_env_file() -> None:
    found = dict(directives(unit(config(FLASKR.replace("  secrets: [SECRET_KEY]\n", "")))))
    assert found["EnvironmentFile"] == "-/etc/flaskr/env"


# --- overrides and validation ------------------------------------------------------------------


def test_project_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "nginx-proxy.conf.j2").write_text("# mine for {{ app.name }}\n")
    files = render(config(), None, tmp_path)
    assert files["nginx/snippets/flaskr-proxy.conf"] == "# mine for flaskr\n"
    assert files["gunicorn.conf.py"] == render(config())["gunicorn.conf.py"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            FLASKR.replace("[flaskr.example.com, www.flaskr.example.com]", '["a.example.com; evil"]'),
            "server.domains",
        ),
        (
            FLASKR.replace("[flaskr.example.com, www.flaskr.example.com]", '["a.example.com\\nreturn 200"]'),
            "server.domains",
        ),
        (
            FLASKR + 'nginx: {content_security_policy: "default-src \\"self\\""}\n',
            "nginx.content_security_policy",
        ),
        (FLASKR + 'nginx: {extra_headers: {X-Test: "a\\" always; return 200; #"}}\n', "nginx.extra_headers"),
        (FLASKR.replace("dir: flaskr/static", 'dir: "my static"'), "app.static.dir"),
        (
            FLASKR.replace("  user: flaskr\n", '  user: flaskr\n  base_dir: "/srv/my app"\n'),
            "server.base_dir",
        ),
        (FLASKR + 'nginx: {client_max_body_size: "1m; return 200"}\n', "nginx.client_max_body_size"),
        (FLASKR.replace("  secrets:", '  env: {A: "x\\ny"}\n  secrets:'), "app.env"),
    ],
)
def test_hostile_values_never_reach_a_file(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, "deploy.yaml", None)
    assert any(p.key.startswith(key) for p in info.value.problems), info.value.problems


FAILING_FACTORY = """\
def load_model():
    raise RuntimeError("model weights missing")


def create_app():
    return load_model()
"""


@pytest.mark.parametrize("preload", ["true", "false"])
@pytest.mark.parametrize(("process", "status"), [("master", 1), ("worker", 4)])
def test_an_app_that_cannot_be_imported_logs_its_traceback_then_stops(
    preload: str,
    process: str,
    status: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The rendered file wraps Gunicorn's import of the app: a failure logs the whole traceback under
    the line deploy.push.applog looks for, then exits (1 from the master; from a worker, Gunicorn's "App
    failed to load", so the master stops instead of forking more workers)."""
    import gunicorn.util

    from deploy.push.applog import excerpt, is_traceback

    monkeypatch.setattr(gunicorn.util, "import_app", gunicorn.util.import_app)  # restored afterwards
    module = f"failing_{preload}_{process}"
    (tmp_path / f"{module}.py").write_text(FAILING_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = render(config(extra=f"gunicorn: {{preload_app: {preload}}}\n"))["gunicorn.conf.py"]
    namespace = gunicorn_settings(text)
    namespace = gunicorn_settings(text)  # read twice (as on a HUP): still wrapped once
    if process == "worker":
        namespace["_master_pid"] = -1
    with pytest.raises(SystemExit) as exited:
        gunicorn.util.import_app(f"{module}:create_app()")
    assert exited.value.code == status
    log = capsys.readouterr().err
    assert log.count("could not be loaded") == 1
    assert excerpt(log) == log.rstrip("\n") and is_traceback(log)
    assert log.startswith(f"deploy: the app {module}:create_app() could not be loaded:\n")
    assert f'  File "{tmp_path / module}.py", line 2, in load_model\n' in log
    assert '      raise RuntimeError("model weights missing")\n' in log
    assert log.endswith("\n  RuntimeError: model weights missing\n")
    assert "gunicorn.conf.py" not in log  # the wrapper's own frame is left out


def test_gunicorns_control_socket_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy never uses gunicornc; its socket and asyncio thread would cost every slot start."""
    text = render(config())["gunicorn.conf.py"]
    monkeypatch.setenv("DEPLOY_SLOT", "green")
    settings: dict[str, object] = {}
    exec(compile(text, "gunicorn.conf.py", "exec"), settings)
    assert settings["control_socket_disable"] is True and "control_socket" not in settings


def test_requests_are_logged_by_nginx_with_timings_and_gunicorn_access_log_is_opt_in() -> None:
    files = render(config())
    site = files["nginx/flaskr.conf"]
    assert "log_format flaskr_timing" in site
    assert "$request_time $upstream_response_time id=$request_id" in site
    assert "access_log /var/log/nginx/flaskr.access.log flaskr_timing;" in site
    assert "accesslog" not in gunicorn_settings(files["gunicorn.conf.py"])
    on = render(config(extra="gunicorn: {access_log: true}\n"))["gunicorn.conf.py"]
    assert gunicorn_settings(on)["accesslog"] == "-"


def test_compiled_templates_are_cached_only_in_a_folder_of_ones_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy.render import render as render_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = render_module._bytecode_cache()
    assert cache is not None
    folder = tmp_path / "deploy" / "templates"
    assert folder.stat().st_mode & 0o777 == 0o700
    render_module._cached_environment.cache_clear()
    try:
        first = render(load(PLAYBOOKS[0], None), None, PLAYBOOKS[0].parent)
        assert list(folder.iterdir()), "compiled templates were not written"
        render_module._cached_environment.cache_clear()
        # A second process (a fresh environment) loads them and renders the same bytes.
        assert render(load(PLAYBOOKS[0], None), None, PLAYBOOKS[0].parent) == first
        folder.chmod(0o777)  # anyone may write there: never load code from it
        assert render_module._bytecode_cache() is None
    finally:
        render_module._cached_environment.cache_clear()
