"""Many loopback hosts serving PDF-like files, each enforcing its own rate, logging every request.

Used by the politeness benchmark: host ``i`` listens on ``127.0.1.i`` and serves ``/w{n}.pdf``;
a request beyond its rate (a sliding window, as APIs count) is answered 429 and counted as a
violation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODY = b"%PDF-1.7\n" + b"0" * 4000 + b"\n%%EOF\n"


@dataclass
class Host:
    ip: str
    rate: float  # requests per second
    server: ThreadingHTTPServer | None = None
    stamps: list[float] = field(default_factory=list)
    violations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://{self.ip}:{self.server.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        host: Host = self.server.host
        now = time.monotonic()
        with host.lock:
            # A server-side sliding window, as real APIs count: at most ceil(rate × W) requests
            # in any window W = max(1 s, one interval).
            window = max(1.0, 1.0 / host.rate)
            allowed = max(1, round(host.rate * window))
            recent = [t for t in host.stamps[-allowed:] if now - t < window]
            too_soon = len(recent) >= allowed
            host.stamps.append(now)
            if too_soon:
                host.violations += 1
        if too_soon:
            body, status = b"slow down", 429
        elif self.path == "/robots.txt":
            body, status = b"User-agent: *\nAllow: /\n", 200
        else:
            body, status = BODY, 200
        self.send_response(status)
        self.send_header("Content-Type", "application/pdf" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)


def serve_in_subprocess(rates: list[float]) -> tuple[list[str], "Any"]:
    """Serve the hosts in a child process, so its timestamps are free of the client's GIL.

    Returns the base URLs and a ``finish()`` callable that stops the child and returns, per
    host, ``(stamps, violations)``.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(rates, child), daemon=True)
    proc.start()
    bases: list[str] = parent.recv()

    def finish() -> list[tuple[list[float], int]]:
        parent.send("stop")
        stats: list[tuple[list[float], int]] = parent.recv()
        proc.join(10)
        return stats

    return bases, finish


def _child(rates: list[float], conn: Any) -> None:
    hosts = start(rates)
    conn.send([h.base for h in hosts])
    conn.recv()
    stop(hosts)
    conn.send([(h.stamps, h.violations) for h in hosts])


def start(rates: list[float]) -> list[Host]:
    hosts = []
    for i, rate in enumerate(rates, start=1):
        host = Host(f"127.0.1.{i}", rate)
        server = ThreadingHTTPServer((host.ip, 0), _Handler)
        server.daemon_threads = True
        server.host = host  # type: ignore[attr-defined]
        host.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hosts.append(host)
    return hosts


def stop(hosts: list[Host]) -> None:
    for host in hosts:
        if host.server:
            host.server.shutdown()
            host.server.server_close()
