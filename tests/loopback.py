"""A tiny programmable HTTP server on 127.0.0.1 for tests, logging every request it serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["Handler"], None]


@dataclass
class Served:
    ts: float
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Loopback:
    server: ThreadingHTTPServer
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[Served] = field(default_factory=list)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[Served]:
        return [s for s in self.log if s.path.split("?")[0] == path]

    def route(self, path: str) -> Callable[[Route], Route]:
        def add(fn: Route) -> Route:
            self.routes[path] = fn
            return fn

        return add


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        box: Loopback = self.server.box
        box.log.append(Served(time.time(), self.command, self.path, dict(self.headers)))
        route = box.routes.get(self.path.split("?")[0])
        if route is None:
            self.reply(404, b"not found", "text/plain")
            return
        route(self)

    do_GET = _dispatch
    do_POST = _dispatch
    do_HEAD = _dispatch

    def reply(
        self,
        status: int,
        body: bytes = b"",
        ctype: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self.wfile.flush()
        if length is not None and length != len(body):
            self.close_connection = True


def start(host: str = "127.0.0.1") -> Loopback:
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    box = Loopback(server)
    server.box = box  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return box


def pdf_bytes(size: int = 20_000, seed: int = 1) -> bytes:
    import random

    rng = random.Random(seed)
    return b"%PDF-1.7\n" + bytes(rng.getrandbits(8) for _ in range(size)) + b"\n%%EOF\n"
