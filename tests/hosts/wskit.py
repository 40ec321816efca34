"""WebSocket helpers for host tests: a minimal client (handshake, text frames) and a request loop."""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


def websocket_frames(
    address: str, host: str, path: str, messages: list[str], greeting: bool = False, timeout: float = 10
) -> list[str]:
    """Open a WebSocket to ws://host/path through `address`; read the server's greeting (if `greeting`),
    then send each text message and read one text frame after each; return the frames read."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((address, 80), timeout=timeout) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reader = sock.makefile("rb")
        status = reader.readline().decode("latin-1").strip()
        if " 101 " not in f"{status} ":
            raise OSError(f"handshake answered {status!r}")
        while reader.readline() not in (b"\r\n", b""):
            pass

        def read_frame() -> str:
            head = reader.read(2)
            if len(head) < 2:
                raise OSError("the connection closed before a frame came")
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", reader.read(2))
            payload = reader.read(length)
            if opcode != 1:
                raise OSError(f"frame opcode {opcode} instead of text: {payload!r}")
            return payload.decode()

        frames = [read_frame()] if greeting else []
        for message in messages:
            payload = message.encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            frames.append(read_frame())
        sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # close (masked, empty)
        return frames


@dataclass
class Loop:
    """One kind of request (`round(address, n)` -> (outcome, version)) in a loop from a few threads."""

    address: str
    round: Callable[[str, int], tuple[str, str]]
    threads: int = 2
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                key, version = self.round(self.address, n)
            except OSError as exc:
                key, version = "error", ""
                with self._lock:
                    if len(self.errors) < 20:
                        self.errors.append(str(exc))
            with self._lock:
                self.counts[key] += 1
                if version:
                    self.versions[version] += 1

    def __enter__(self) -> Loop:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        deadline = time.monotonic() + 30
        while sum(self.counts.values()) < self.threads:
            assert time.monotonic() < deadline, "no request finished in 30 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)

    @property
    def failed(self) -> int:
        return sum(n for key, n in self.counts.items() if key != "ok")
