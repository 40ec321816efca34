"""Run the rendered Nginx site for real, inside a private mount and network namespace.

Started by the `tools` tests as `unshare --mount --net --fork python3 nginx_jail.py SPEC.json`.
The machine's /etc and /var are covered by overlays, /run and /srv by tmpfs, so the rendered
files, a self-signed certificate, the ACME webroot and Nginx's pid and logs land in throwaway
layers; nothing on the machine changes and no packet leaves the namespace's own loopback.
Prints one JSON object: the output of `nginx -t`, gixy's findings and, with "live", the answers
to real HTTP(S) requests; with "batch" (a list of sites), only the output of `nginx -t` for each.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def isolate(scratch: Path) -> None:
    """Throwaway layers over everything Nginx, certbot and the app would write."""
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "tmpfs", str(scratch))
    for top in ("etc", "var"):
        upper, work = scratch / top / "upper", scratch / top / "work"
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir=/{top},upperdir={upper},workdir={work}",
            f"/{top}",
        )
    for top in ("/run", "/srv"):
        sh("mount", "-t", "tmpfs", "tmpfs", top)
    sh("ip", "link", "set", "lo", "up")


def self_signed(cert: str, key: str, domains: list[str]) -> None:
    Path(cert).parent.mkdir(parents=True, exist_ok=True)
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"DNS:{d}" for d in domains)
    sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={domains[0]}",
        "-addext",
        f"subjectAltName={san}",
        "-keyout",
        key,
        "-out",
        cert,
    )


#: A small main config around the site, like Debian's but without its TLS 1.0/1.1 defaults,
#: so that gixy judges the rendered files and not the distribution's nginx.conf.
WRAPPER = """\
user www-data;
worker_processes 1;
worker_rlimit_nofile 2048;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events {
    worker_connections 512;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log /var/log/nginx/access.log;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*.conf;
}
"""


ENABLED = Path("/etc/nginx/sites-enabled")


def install_site(app: str, files: dict[str, str]) -> list[Path]:
    """One app's rendered site, snippets and catch-all files where deploy setup puts them; the
    files written."""
    written = [ENABLED / f"{app}.conf"]
    written[0].write_text(files[f"nginx/{app}.conf"])
    for path, text in files.items():
        if path.startswith(("nginx/snippets/", "nginx/conf.d/")):
            target = Path("/etc/nginx", *Path(path).parts[1:])
            target.write_text(text)
            written.append(target)
    return written


def install(spec: dict[str, Any]) -> None:
    """Put the rendered files where deploy setup puts them on a Debian host."""
    shutil.rmtree(ENABLED)  # only Debian's default site lives there (removed by deploy setup too)
    ENABLED.mkdir()
    # This app's files, then those of other apps on the same host ("others": [[name, files], ...]).
    for app, files in [[spec["app"], spec["files"]], *spec.get("others", [])]:
        install_site(app, files)
    Path("/etc/nginx/deploy-test.conf").write_text(WRAPPER)
    if spec.get("certificate"):
        self_signed(spec["certificate"], spec["certificate_key"], spec["domains"])
    acme = Path(spec["acme_webroot"]) / ".well-known" / "acme-challenge"
    acme.mkdir(parents=True)
    (acme / "token123").write_text("token123.thumbprint")


def request(
    port: int, path: str, host: str, tls: bool, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """One request; the answer as status, headers and the first bytes of the body."""
    conn: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        # SNI must carry the site's name: connect by address, present the name.
        conn.host = host
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            conn.sock = context.wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            return {"error": type(exc).__name__, "detail": str(exc)}
        answer: dict[str, Any] = {"tls_version": conn.sock.version()}
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answer = {}
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        body = response.read()
    except (http.client.HTTPException, OSError) as exc:
        return {"error": type(exc).__name__, "detail": str(exc)}
    finally:
        conn.close()
    answer.update(
        status=response.status,
        headers=[[k.lower(), v] for k, v in response.getheaders()],
        body=body[:200].decode("utf-8", "replace"),
    )
    return answer


def start_app(spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The example app's Gunicorn on the slot socket, run from a release copy with the rendered conf."""
    release = Path(spec["base"]) / "releases" / "r1"
    shutil.copytree(spec["project"], release, ignore=shutil.ignore_patterns("__pycache__", "instance"))
    (release / "gunicorn.conf.py").write_text(spec["files"]["gunicorn.conf.py"])
    Path(spec["current"]).symlink_to(release)
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(mode=0o750)
    shutil.chown(run_dir, group="www-data")  # on a host: the app's group, which www-data joins
    socket_path = run_dir / "blue.sock"
    Path(spec["upstream_socket"]).symlink_to(socket_path)
    env = {**os.environ, "SECRET_KEY": "jail-test-secret-key-0123456789abcdef"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(release / "gunicorn.conf.py"),
            "--bind",
            f"unix:{socket_path}",
            "--no-control-socket",
            "--workers",
            "1",
            spec["wsgi"],
        ],
        cwd=release,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(Path(spec["scratch"]) / "gunicorn.log").open("wb"),
    )
    for _ in range(100):
        if socket_path.exists():
            break
        time.sleep(0.1)
    shutil.chown(socket_path, group="www-data")
    return proc


def batch(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """`nginx -t` for each of many rendered sites, one at a time, in this one namespace (fuzz tests
    check hundreds): each site's files are installed, tested and removed again. One self-signed
    certificate serves every ssl_certificate the sites name (nginx -t reads it, but not its names)."""
    shutil.rmtree(ENABLED)
    ENABLED.mkdir()
    cert, key = Path(spec["scratch"]) / "cert.pem", Path(spec["scratch"]) / "key.pem"
    self_signed(str(cert), str(key), ["fuzz.example.com"])
    results = []
    for item in spec["batch"]:
        written = install_site(item["app"], item["files"])
        for kind, target in re.findall(
            r"^\s*ssl_certificate(_key)?\s+(\S+);", "".join(item["files"].values()), re.M
        ):
            # Only in the throwaway layers: a path elsewhere would write to the machine itself.
            assert target.startswith(("/etc/", "/var/", "/run/", "/srv/")) and ".." not in target, target
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(key if kind else cert, target)
            written.append(Path(target))
        test = sh("nginx", "-t", check=False)
        results.append({"returncode": test.returncode, "output": test.stderr})
        for path in written:
            path.unlink(missing_ok=True)
    return results


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    isolate(Path(spec["scratch"]))
    if "batch" in spec:
        print(json.dumps({"batch": batch(spec)}))
        return
    install(spec)
    result: dict[str, Any] = {}
    test = sh("nginx", "-t", check=False)
    result["nginx_t"] = {"returncode": test.returncode, "output": test.stderr}
    wrapped = sh("nginx", "-t", "-c", "/etc/nginx/deploy-test.conf", check=False)
    result["nginx_t_wrapper"] = {"returncode": wrapped.returncode, "output": wrapped.stderr}
    # nginx_cves compares upstream version numbers, but Debian backports fixes into 1.22.1
    # (both CVEs it names for 1.22.1 are patched in 1.22.1-9+deb12u11): skip that one check.
    gixy = sh(
        "gixy",
        "-f",
        "json",
        "--nginx-version",
        spec["nginx_version"],
        "--skips",
        "nginx_cves",
        "/etc/nginx/deploy-test.conf",
        check=False,
    )
    result["gixy"] = {"returncode": gixy.returncode, "stdout": gixy.stdout, "stderr": gixy.stderr}
    if spec.get("live") and test.returncode == 0:
        app_proc = start_app(spec)
        nginx = sh("nginx", check=False)
        result["nginx_start"] = nginx.stderr
        try:
            result["requests"] = {name: request(**args) for name, args in spec["requests"].items()}
        finally:
            sh("nginx", "-s", "stop", check=False)
            app_proc.terminate()
            app_proc.wait(timeout=30)
            result["gunicorn_log"] = (Path(spec["scratch"]) / "gunicorn.log").read_text()[-3000:]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
