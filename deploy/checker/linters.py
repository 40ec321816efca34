"""Run the external linters that `deploy check` builds on (systemd-analyze, hadolint, gixy) on texts.

The only place the checks start a program: each function takes file contents, writes what the tool
needs into a temporary folder, runs it, and returns its parsed answer. A missing tool or an answer
that cannot be read raises `LinterUnavailable`, which the checks turn into "skipped".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

TIMEOUT = 60
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)\s+(\S+)")


class LinterUnavailable(Exception):
    """The tool is not installed, or gave an answer that cannot be read."""


@dataclass(frozen=True)
class Exposure:
    """systemd-analyze security's overall score of a unit (0 locked down .. 10 unsafe)."""

    score: float
    level: str


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LinterUnavailable(f"{name} is not installed")
    return path


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise LinterUnavailable(f"{PurePosixPath(argv[0]).name} took longer than {TIMEOUT} s") from None


def systemd_exposure(unit_name: str, text: str) -> Exposure:
    """Score a unit file offline (`systemd-analyze security --offline=true`)."""
    tool = _tool("systemd-analyze")
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / unit_name.replace("@.service", "@check.service")
        unit.write_text(text, encoding="utf-8")
        proc = _run([tool, "security", "--offline=true", "--no-pager", str(unit)])
    match = _EXPOSURE.search(proc.stdout + proc.stderr)
    if match is None:
        raise LinterUnavailable(
            f"systemd-analyze security gave no score: {(proc.stderr or proc.stdout).strip()[:200]}"
        )
    return Exposure(float(match.group(1)), match.group(2))


def hadolint(text: str) -> list[dict[str, Any]]:
    """hadolint's issues for a Dockerfile (dicts with code, level, line, message)."""
    proc = _run([_tool("hadolint"), "-f", "json", "--no-fail", "-"], stdin=text)
    try:
        issues = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise LinterUnavailable(f"hadolint failed: {proc.stderr.strip()[:200]}") from None
    return [i for i in issues if isinstance(i, dict)]


def gixy(
    files: dict[str, str], site: str, snippets_dir: str = "/etc/nginx/snippets/"
) -> list[dict[str, Any]]:
    """gixy's issues for an Nginx site, its snippets (`files` by path) resolved from a temporary folder."""
    tool = _tool("gixy")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, text in files.items():
            text = re.sub(rf"include\s+{re.escape(snippets_dir)}", f"include {root}/", text)
            (root / PurePosixPath(path).name).write_text(text, encoding="utf-8")
        (root / "nginx.conf").write_text(
            f"events {{}}\nhttp {{\n    include {root / PurePosixPath(site).name};\n}}\n", encoding="utf-8"
        )
        proc = _run([tool, "-f", "json", str(root / "nginx.conf")])
    try:
        issues = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise LinterUnavailable(f"gixy failed: {(proc.stderr or proc.stdout).strip()[:200]}") from None
    return [i for i in issues if isinstance(i, dict)]


@dataclass(frozen=True)
class Rejection:
    """One error a tool reported about a rendered file: the file (its rendered path), line, message."""

    file: str | None
    line: int | None
    message: str


_NGINX_ERROR = re.compile(r"^nginx: \[(emerg|alert|crit|error)\] (.*?)(?: in (\S+):(\d+))?$")
_NGINX_VERSION = re.compile(r"nginx/(\d+(?:\.\d+)*)")
#: Directives whose file argument is a path on the host: each points at a stand-in in the test folder.
_NGINX_HOST_FILES = re.compile(
    r"^(\s*)(ssl_certificate_key|ssl_certificate|ssl_trusted_certificate|ssl_client_certificate|"
    r"access_log|error_log)(\s+)(/[^\s;]+)",
    re.MULTILINE,
)


_LISTEN = re.compile(r"^(\s*listen\s+)([^\s;]+)", re.MULTILINE)


def _listen_port(address: str) -> int | None:
    """The port of a `listen` address (`80`, `[::]:443`, `10.0.0.1`: 80); None for a unix socket."""
    if address.startswith("unix:"):
        return None
    if address.isdigit():
        return int(address)
    tail = address.split("]")[-1]
    port = tail.rsplit(":", 1)[1] if ":" in tail else "80"
    return int(port) if port.isdigit() else None


def _free_ports(wanted: set[int | None]) -> dict[int, int]:
    """A free port on this machine for each wanted port (held open together, so all differ)."""
    sockets = []
    try:
        for _ in (p for p in wanted if p is not None):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return dict(
            zip(
                sorted(p for p in wanted if p is not None), (s.getsockname()[1] for s in sockets), strict=True
            )
        )
    finally:
        for sock in sockets:
            sock.close()


def nginx_version() -> tuple[int, ...]:
    """This machine's Nginx version (`nginx -v`)."""
    proc = _run([_tool("nginx"), "-v"])
    match = _NGINX_VERSION.search(proc.stderr + proc.stdout)
    if match is None:
        raise LinterUnavailable(f"nginx -v gave no version: {(proc.stderr or proc.stdout).strip()[:200]}")
    return tuple(int(p) for p in match.group(1).split("."))


def nginx_test(files: dict[str, str], snippets_dir: str = "/etc/nginx/snippets/") -> list[Rejection]:
    """`nginx -t` on the rendered Nginx files (`files` by rendered path: the site under nginx/, its
    snippets under nginx/snippets/, the catch-all servers under nginx/conf.d/), as a host loads them.

    Runs as any user and changes nothing on this machine: the files go into a temporary folder, their
    includes of the snippets folder point there, the certificate and key a site names are replaced by
    a throwaway self-signed pair, and logs, pid and temporary files stay in that folder. Each line is
    where it was, so an error names the rendered file and line. [] when Nginx accepts them.
    """
    tool = _tool("nginx")
    openssl = _tool("openssl")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("sites", "conf.d", "snippets", "logs", "temp"):
            (root / folder).mkdir()
        cert, key = _test_certificate(openssl, root)
        stand_in = {
            "ssl_certificate": cert,
            "ssl_certificate_key": key,
            "ssl_trusted_certificate": cert,
            "ssl_client_certificate": cert,
        }

        def host_file(match: re.Match[str]) -> str:
            lead, name, space, path = match.groups()
            target = stand_in.get(name) or root / "logs" / PurePosixPath(path).name
            return f"{lead}{name}{space}{target}"

        # nginx -t binds every listen address: each port becomes a free one here (the same for all).
        ports = _free_ports({_listen_port(m.group(2)) for t in files.values() for m in _LISTEN.finditer(t)})

        def listen(match: re.Match[str]) -> str:
            address = match.group(2)
            port = _listen_port(address)
            if port is None:
                return match.group(0)
            if address.isdigit():
                return f"{match.group(1)}{ports[port]}"
            # An address with a port (`[::]:443`, `*:80`), or without one (port 80).
            host = address.rsplit(":", 1)[0] if ":" in address.split("]")[-1] else address
            return f"{match.group(1)}{host}:{ports[port]}"

        written: dict[str, str] = {}
        for path, text in files.items():
            parts = PurePosixPath(path).parts
            folder = "snippets" if "snippets" in parts else "conf.d" if "conf.d" in parts else "sites"
            target = root / folder / PurePosixPath(path).name
            text = re.sub(rf"(include\s+){re.escape(snippets_dir)}", rf"\g<1>{root}/snippets/", text)
            text = _LISTEN.sub(listen, _NGINX_HOST_FILES.sub(host_file, text))
            target.write_text(text, encoding="utf-8")
            written[str(target)] = path
        temp = "".join(
            f"    {kind}_temp_path {root}/temp/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        mime = "    include /etc/nginx/mime.types;\n" if Path("/etc/nginx/mime.types").is_file() else ""
        main = root / "nginx.conf"
        main.write_text(
            f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log;\n"
            f"events {{\n    worker_connections 64;\n}}\nhttp {{\n{mime}{temp}"
            f"    access_log {root}/logs/access.log;\n"
            f"    include {root}/conf.d/*.conf;\n    include {root}/sites/*;\n}}\n",
            encoding="utf-8",
        )
        argv = [tool, "-t", "-q", "-p", f"{root}/", "-c", str(main)]
        if nginx_version() >= (1, 19, 5):
            argv += ["-e", str(root / "logs" / "error.log")]  # else the compiled-in log is tried first
        proc = _run(argv)
    if proc.returncode == 0:
        return []
    return _nginx_rejections(proc, written, ports)


def _test_certificate(openssl: str, root: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key in `root`, for the sites' TLS directives."""
    cert, key = root / "cert.pem", root / "key.pem"
    made = _run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=deploy-check", "-keyout", str(key), "-out", str(cert)]
    )  # fmt: skip
    if made.returncode != 0:
        raise LinterUnavailable(f"openssl could not make a test certificate: {made.stderr.strip()[:200]}")
    return cert, key


def _nginx_rejections(
    proc: subprocess.CompletedProcess[str], written: dict[str, str], ports: dict[int, int]
) -> list[Rejection]:
    """What `nginx -t` rejected, named by rendered file, line and the ports of the rendered files."""
    out: list[Rejection] = []
    for line in (proc.stderr + proc.stdout).splitlines():
        match = _NGINX_ERROR.match(line.strip())
        if match is None or "could not open error log file" in line:
            continue
        _, message, file, number = match.groups()
        for written_path, rendered_path in written.items():
            message = message.replace(written_path, rendered_path)
        for port, free in ports.items():
            message = message.replace(f":{free}", f":{port}")
        out.append(Rejection(written.get(file or "", file), int(number) if number else None, message))
    return out or [Rejection(None, None, (proc.stderr or proc.stdout).strip()[:300] or "nginx -t failed")]


_UNIT_LINE = re.compile(r"^(\S+?):(\d+): (.*)$")
_EXEC = re.compile(r"^Exec[A-Za-z]*=[-@:+!|]*(/\S+)", re.MULTILINE)


def systemd_verify(
    unit_name: str, text: str, stub_under: tuple[str, ...] = (), beside: Mapping[str, str] | None = None
) -> list[Rejection]:
    """`systemd-analyze verify` on a rendered unit (a template is verified as its instance `check`).

    The unit is verified in a temporary root: the commands it runs that lie under `stub_under` (the
    app's folders, made by push) are stand-in executables there, any other command must exist on
    this machine. Messages name `unit_name` and the unit's line. [] when systemd accepts it. `beside`
    holds units (name: text) installed next to it, such as the service a timer starts.
    """
    tool = _tool("systemd-analyze")
    instance = unit_name.replace("@.service", "@check.service")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unit = root / "etc" / "systemd" / "system" / instance
        unit.parent.mkdir(parents=True)
        unit.write_text(text, encoding="utf-8")
        for name, other in (beside or {}).items():
            (unit.parent / name).write_text(other, encoding="utf-8")
        for command in _EXEC.findall("\n".join([text, *(beside or {}).values()])):
            command = command.replace("%i", "check").replace("%I", "check")
            if ".." in PurePosixPath(command).parts:
                continue
            stub = root / command.lstrip("/")
            inside = any(command.startswith(folder.rstrip("/") + "/") for folder in stub_under)
            if inside or (Path(command).is_file() and os.access(command, os.X_OK)):
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n", encoding="utf-8")
                stub.chmod(0o755)
        proc = _run([tool, "verify", "--man=no", "--recursive-errors=no", f"--root={root}", str(unit)])
        shown = {str(unit): unit_name, instance: unit_name}
    if proc.returncode == 0:
        return []
    out: list[Rejection] = []
    for line in (proc.stderr + proc.stdout).splitlines():
        line = line.strip()
        match = _UNIT_LINE.match(line)
        if match is not None and match.group(1) in shown:
            out.append(Rejection(unit_name, int(match.group(2)), match.group(3)))
        elif line.startswith(f"{instance}: "):
            out.append(Rejection(unit_name, None, line.removeprefix(f"{instance}: ").replace(str(root), "")))
    return out or [Rejection(unit_name, None, (proc.stderr or proc.stdout).strip()[:300] or "verify failed")]
