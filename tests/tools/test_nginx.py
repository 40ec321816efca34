"""The rendered Nginx site passes `nginx -t` and gixy, and really serves: headers, redirects, ACME."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from deploy.config.loader import load, load_text
from deploy.config.model import Config
from deploy.layout import paths_for
from deploy.remote.facts import HostFacts
from deploy.render.render import render

ROOT = Path(__file__).resolve().parents[2]
FLASKR = ROOT / "playbooks" / "flaskr"
JAIL = Path(__file__).with_name("nginx_jail.py")
SECURITY_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
}

pytestmark = [
    pytest.mark.tools,
    pytest.mark.real_tools("nginx", "gixy", "unshare", root=True),
]


def jail(
    tmp_path: Path,
    cfg: Config,
    facts: HostFacts,
    *,
    live: bool = False,
    requests: dict[str, dict[str, Any]] | None = None,
    others: Sequence[Config] = (),
) -> dict[str, Any]:
    """Install the rendered site (and `others`' sites: more apps on the same host) in a private
    namespace; nginx -t, gixy and optional requests."""
    paths = paths_for(cfg)
    https = cfg.server.tls is not False and facts.has_certificate is not False
    spec = {
        "app": cfg.app.name,
        "files": render(cfg, facts),
        "domains": cfg.server.domains,
        "certificate": paths.tls_certificate if https else None,
        "certificate_key": paths.tls_certificate_key if https else None,
        "acme_webroot": paths.acme_webroot,
        "scratch": str(tmp_path / "scratch"),
        "nginx_version": facts.nginx_version or "1.22.1",
        "live": live,
        "base": paths.base,
        "current": paths.current,
        "run_dir": paths.run_dir,
        "upstream_socket": paths.upstream_socket,
        "project": str(FLASKR),
        "wsgi": cfg.app.wsgi,
        "requests": requests or {},
        "others": [[other.app.name, render(other, facts)] for other in others],
    }
    (tmp_path / "scratch").mkdir()
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", sys.executable, str(JAIL), str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_checks_pass(result: dict[str, Any], nginx_t: bool = True) -> None:
    if nginx_t:
        assert result["nginx_t"]["returncode"] == 0, result["nginx_t"]["output"]
        assert result["nginx_t_wrapper"]["returncode"] == 0, result["nginx_t_wrapper"]["output"]
        assert "[warn]" not in result["nginx_t_wrapper"]["output"]
    findings = json.loads(result["gixy"]["stdout"] or "[]")
    assert result["gixy"]["returncode"] == 0 and findings == [], json.dumps(findings, indent=1)


def headers(answer: dict[str, Any]) -> dict[str, str]:
    assert "error" not in answer, answer
    return {k: v for k, v in answer["headers"]}


def flaskr() -> Config:
    return load(FLASKR / "deploy.yaml", None)


HTTPS_REQUESTS = {
    "page": {
        "port": 443,
        "path": "/",
        "host": "flaskr.example.com",
        "tls": True,
        "headers": {"Accept-Encoding": "gzip"},
    },
    "static": {"port": 443, "path": "/static/style.css", "host": "flaskr.example.com", "tls": True},
    "static_missing": {"port": 443, "path": "/static/nope.css", "host": "flaskr.example.com", "tls": True},
    "app_missing": {"port": 443, "path": "/nope", "host": "flaskr.example.com", "tls": True},
    "traversal": {"port": 443, "path": "/static../etc/passwd", "host": "flaskr.example.com", "tls": True},
    "http": {"port": 80, "path": "/notes?page=2", "host": "flaskr.example.com", "tls": False},
    "acme": {
        "port": 80,
        "path": "/.well-known/acme-challenge/token123",
        "host": "flaskr.example.com",
        "tls": False,
    },
    "other_http": {"port": 80, "path": "/", "host": "evil.example", "tls": False},
    "other_https": {"port": 443, "path": "/", "host": "evil.example", "tls": True},
}


def test_https_site_passes_checks_and_serves_headers_everywhere(tmp_path: Path) -> None:
    result = jail(tmp_path, flaskr(), HostFacts(), live=True, requests=HTTPS_REQUESTS)
    assert_checks_pass(result)
    answers = result["requests"]
    for name in ("page", "static", "static_missing", "app_missing"):
        got = headers(answers[name])
        assert got.keys() >= SECURITY_HEADERS, (name, got)
        assert got["strict-transport-security"] == "max-age=63072000; includeSubDomains", name
        assert "x-xss-protection" not in got and got["server"] == "nginx", name
        assert answers[name]["tls_version"] in ("TLSv1.3", "TLSv1.2")
    assert answers["page"]["status"] == 200
    assert "secure" in headers(answers["page"])["set-cookie"].lower()  # Gunicorn saw X-Forwarded-Proto
    assert headers(answers["page"]).get("content-encoding") == "gzip"
    assert answers["static"]["status"] == 200 and "font-family" in answers["static"]["body"]
    assert headers(answers["static"])["cache-control"] == "public, max-age=31536000, immutable"
    assert answers["static_missing"]["status"] == 404 and answers["app_missing"]["status"] == 404
    assert answers["traversal"]["status"] == 404
    assert answers["http"]["status"] == 301
    assert headers(answers["http"])["location"] == "https://flaskr.example.com/notes?page=2"
    assert answers["acme"]["status"] == 200 and answers["acme"]["body"] == "token123.thumbprint"
    assert answers["other_http"]["error"] == "RemoteDisconnected"  # 444: closed without an answer
    assert answers["other_https"]["error"] == "SSLError"  # ssl_reject_handshake


def test_http_only_site_before_the_certificate_exists(tmp_path: Path) -> None:
    requests = {
        "page": {"port": 80, "path": "/", "host": "flaskr.example.com", "tls": False},
        "static": {"port": 80, "path": "/static/style.css", "host": "flaskr.example.com", "tls": False},
        "acme": {
            "port": 80,
            "path": "/.well-known/acme-challenge/token123",
            "host": "flaskr.example.com",
            "tls": False,
        },
    }
    result = jail(tmp_path, flaskr(), HostFacts(has_certificate=False), live=True, requests=requests)
    assert_checks_pass(result)
    answers = result["requests"]
    for name in ("page", "static"):
        got = headers(answers[name])
        assert answers[name]["status"] == 200, name
        assert got.keys() >= SECURITY_HEADERS and "strict-transport-security" not in got, name
    assert answers["acme"]["body"] == "token123.thumbprint"


@pytest.mark.parametrize("playbook", ["full.yaml", "internal.yaml", "minimal.yaml"])
def test_other_playbooks_pass_nginx_t_and_gixy(tmp_path: Path, playbook: str) -> None:
    assert_checks_pass(jail(tmp_path, load(ROOT / "playbooks" / playbook, None), HostFacts()))


def test_own_certificate_site_passes(tmp_path: Path) -> None:
    text = (
        (FLASKR / "deploy.yaml")
        .read_text()
        .replace("tls: {email: ops@example.com}", "tls: {cert: certs/fullchain.pem, key: certs/privkey.pem}")
    )
    cfg = load_text(text, "deploy.yaml", None)
    assert paths_for(cfg).tls_certificate == "/etc/flaskr/tls/fullchain.pem"
    assert_checks_pass(jail(tmp_path, cfg, HostFacts()))


def test_nginx_1_25_rendering_passes_gixy(tmp_path: Path) -> None:
    """Only 1.22 runs here, so the `http2 on;` rendering is checked by gixy (and the unit tests)."""
    result = jail(tmp_path, flaskr(), HostFacts(nginx_version="1.26.2"))
    assert "http2" in result["nginx_t"]["output"]  # 1.22 really does not know `http2 on;`
    assert_checks_pass(result, nginx_t=False)


def test_two_apps_share_one_nginx(tmp_path: Path) -> None:
    """A second app (HTTP only) beside the example (HTTPS): each name reaches its own site, the
    shared catch-all servers still drop every other name, and nginx -t passes without a warning."""
    notes = load_text(
        "app: {name: notes, wsgi: 'notes:app'}\nserver: {domains: [notes.example.org], tls: false}\n",
        "deploy.yaml",
        None,
    )
    requests = {
        "flaskr": {"port": 443, "path": "/", "host": "flaskr.example.com", "tls": True},
        "flaskr_http": {"port": 80, "path": "/", "host": "flaskr.example.com", "tls": False},
        # notes' Gunicorn is not running here: a 502 from its site shows the name reached it.
        "notes": {"port": 80, "path": "/", "host": "notes.example.org", "tls": False},
        "other_http": {"port": 80, "path": "/", "host": "evil.example", "tls": False},
        "other_https": {"port": 443, "path": "/", "host": "evil.example", "tls": True},
    }
    result = jail(tmp_path, flaskr(), HostFacts(), live=True, requests=requests, others=[notes])
    assert_checks_pass(result)
    answers = result["requests"]
    assert answers["flaskr"]["status"] == 200 and "flaskr" in answers["flaskr"]["body"].lower()
    assert answers["flaskr_http"]["status"] == 301
    assert answers["notes"]["status"] == 502
    assert headers(answers["notes"]).keys() >= SECURITY_HEADERS
    assert answers["other_http"]["error"] == "RemoteDisconnected"
    assert answers["other_https"]["error"] == "SSLError"


def test_two_apps_with_websockets_share_one_nginx(tmp_path: Path) -> None:
    """Each app passing WebSocket upgrades has a map variable of its own (Nginx takes the same map
    twice silently: a project's own template changing its map would change the other app's): two such
    apps on one Nginx pass nginx -t and gixy, and a plain request still reaches the app."""
    # The example app itself (WSGI) runs here: upgrades on by the setting, its Gunicorn unchanged.
    flaskr_ws = flaskr().model_copy(update={"nginx": flaskr().nginx.model_copy(update={"websockets": True})})
    chat = load_text(
        "app: {name: chat-room, wsgi: 'chat:app'}\nserver: {domains: [chat.example.org], tls: false}\n"
        "gunicorn: {worker_class: uvicorn_worker.UvicornWorker}\n",
        "deploy.yaml",
        None,
    )
    requests = {
        "flaskr": {"port": 443, "path": "/", "host": "flaskr.example.com", "tls": True},
        # chat-room's Gunicorn is not running here: a 502 from its site shows the name reached it.
        "chat": {"port": 80, "path": "/", "host": "chat.example.org", "tls": False},
    }
    result = jail(tmp_path, flaskr_ws, HostFacts(), live=True, requests=requests, others=[chat])
    assert_checks_pass(result)
    assert result["requests"]["flaskr"]["status"] == 200
    assert result["requests"]["chat"]["status"] == 502
    assert "$chat_room_connection_upgrade" in render(chat)["nginx/chat-room.conf"]
    assert "$flaskr_connection_upgrade" in render(flaskr_ws)["nginx/flaskr.conf"]
