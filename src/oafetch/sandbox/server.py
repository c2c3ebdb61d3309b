"""The HTTP side: one threaded HTTP/1.1 server per sandbox host, and the request handler.

Each `HostServer` listens on its own loopback address and runs `serve_forever` in one thread;
connections get a daemon thread each (keep-alive, TCP_NODELAY). The handler parses the request,
applies the host's rate check (429 + Retry-After, logged ``throttled``), asks the service's
`App` for a response, writes it -- honestly or, for the misbehaving modes, not -- and logs it.
`close_connections` shuts every open connection so `stop()` never leaves a thread behind on a
client's idle keep-alive socket.
"""

from __future__ import annotations

import contextlib
import http
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .apis import App
from .log import RequestLog
from .ratecheck import SlidingWindow, retry_after_seconds
from .wire import Request, Response, json_response, text_response

logger = logging.getLogger("oafetch.sandbox")

_MAX_BODY = 10 * 1024 * 1024


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _too_many(wait: float) -> Response:
    """The answer to a request above the host's rate."""
    retry = retry_after_seconds(wait)
    body = {"error": "Too Many Requests", "message": f"Rate limit exceeded; retry in {retry}s"}
    return json_response(body, 429, [("Retry-After", str(retry))])


def _planned_bytes(response: Response, head_only: bool) -> int:
    """The body bytes the server means to send (a truncated body's are fewer than announced)."""
    if head_only or response.status in (204, 304):
        return 0
    if response.chunks is not None:
        return response.length if response.length is not None else 0
    return len(response.body)


class HostServer(ThreadingHTTPServer):
    """One sandbox host: a listening socket, its service and its rate check."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        service: str,
        log: RequestLog,
        window: SlidingWindow | None,
    ) -> None:
        super().__init__(address, SandboxHandler)
        self.service = service
        self.log = log
        self.window = window
        self.app: App | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup (getfqdn can stall for seconds)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.ip
        self.server_port = self.port

    @property
    def ip(self) -> str:
        """The bound address."""
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open client connection (idle keep-alive threads then exit)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug(
            "sandbox %s: connection error from %s", self.service, client_address, exc_info=True
        )


class SandboxHandler(BaseHTTPRequestHandler):
    """Parses, rate-checks, dispatches, writes and logs one request at a time."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: HostServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr line (the RequestLog records requests)."""

    def do_GET(self) -> None:
        """Serve GET (and, through aliases, every other verb)."""
        self._serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""

    def _serve(self) -> None:
        started = time.time()
        host = self.server
        split = urlsplit(self.path)
        body = self._read_body()
        req = Request(
            method=self.command,
            path=unquote(split.path) or "/",
            target=self.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        wait = host.window.check() if host.window is not None else None
        response = _too_many(wait) if wait is not None else self._dispatch(req)
        head_only = self.command == "HEAD"
        entry = {
            "ts": started,
            "service": host.service,
            "host": host.ip,
            "port": host.port,
            "method": self.command,
            "path": self.path,
            "status": response.status,
            "bytes_sent": _planned_bytes(response, head_only),
            "throttled": wait is not None,
            "user_agent": self.headers.get("User-Agent"),
            "if_none_match": self.headers.get("If-None-Match"),
            "if_modified_since": self.headers.get("If-Modified-Since"),
            "has_authorization": self.headers.get("Authorization") is not None,
            "range": self.headers.get("Range"),
        }
        # Logged before the bytes go out, so a client that has its answer always finds the
        # entry; the byte count is corrected (and the JSONL line written) once they have.
        host.log.record(entry)
        sent = self._write(response, head_only)
        host.log.commit(entry, bytes_sent=sent)

    def _dispatch(self, req: Request) -> Response:
        app = self.server.app
        if app is None:
            return text_response("Service starting\n", 503, [("Retry-After", "1")])
        try:
            return app.handle(req)
        except Exception:
            logger.exception("sandbox %s: error serving %s", self.server.service, req.target)
            return text_response("Internal Server Error\n", 500)

    def _write(self, response: Response, head_only: bool) -> int:
        """Send `response`; return the body bytes actually written."""
        status = response.status
        lines = [f"HTTP/1.1 {status} {_phrase(status)}"]
        names = {name.lower() for name, _ in response.headers}
        if "server" not in names:
            lines.append("Server: oafetch-sandbox")
        lines.append(f"Date: {self.date_time_string()}")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if status not in (204, 304):
            length = response.length if response.length is not None else len(response.body)
            lines.append(f"Content-Length: {length}")
        if response.close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if head_only or status in (204, 304):
            return self._send(head, b"")
        if response.chunks is None:
            return self._send(head, response.body)
        sent = self._send(head, b"")
        for chunk in response.chunks:
            if response.pace:
                time.sleep(response.pace)
            wrote = self._send(b"", chunk)
            sent += wrote
            if wrote < len(chunk):
                break
        return sent

    def _send(self, head: bytes, body: bytes) -> int:
        """Write head and body (one syscall when small); 0 if the client has gone."""
        try:
            if head and len(body) < 65536:
                self.wfile.write(head + body)
            else:
                if head:
                    self.wfile.write(head)
                if body:
                    self.wfile.write(body)
        except OSError:  # the client went away (reset, broken pipe, timeout)
            self.close_connection = True
            return 0
        return len(body)
