"""Fault servers for the fault-injection suite: raw sockets that misbehave on purpose.

* :class:`RawServer` — a loopback TCP server whose per-connection behaviour is a plain function
  ``behaviour(conn, request_head)``; it can reset, hang, drip or lie in ways
  ``http.server`` will not (the helpers below build the usual ones).
* :func:`tls_server` — a ``loopback`` server wrapped in TLS with a ``trustme`` certificate
  that no default trust store accepts.
* :func:`gzip_bomb` — a small gzip body that expands far past any sane ``max_bytes``.
* :func:`dead_port` — a loopback port nobody listens on.

Every server is loopback only and stops (connections included) when the test ends.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopback import Handler, Loopback, start

Behaviour = Callable[[socket.socket, bytes, "RawServer"], None]


def quick_loopback() -> Iterator[Loopback]:
    """Body of a ``server`` fixture: conftest's loopback server, but stopped in ~50 ms rather
    than 0.5 s (its poll interval), which adds up over a few hundred fault tests."""
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # a client that hangs up on a lying server is the point of these tests, not news
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    box = Loopback(server)
    server.box = box  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


@dataclass
class RawServer:
    """A threaded TCP server on 127.0.0.1 running ``behaviour`` for every connection."""

    behaviour: Behaviour
    sock: socket.socket = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    requests: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # body bytes each behaviour managed to send
    _conns: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.requests.append(head)
            self.behaviour(conn, head, self)
        with contextlib.suppress(OSError):
            conn.close()

    def close(self) -> None:
        self.stop.set()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self.sock.close()

    def path_of(self, index: int) -> str:
        return self.requests[index].split(b" ", 2)[1].decode()


def head(status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP RST, not an orderly FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def reset_mid_body(body: bytes, after: int) -> Behaviour:
    """Announce ``len(body)`` bytes, send ``after`` of them, then reset the connection."""

    def behaviour(conn: socket.socket, _: bytes, server: RawServer) -> None:
        conn.sendall(
            head(200, {"Content-Type": "application/pdf", "Content-Length": str(len(body))})
        )
        conn.sendall(body[:after])
        time.sleep(0.05)
        server.sent.append(after)
        reset(conn)

    return behaviour


def never_answer(conn: socket.socket, _: bytes, server: RawServer) -> None:
    """Accept, read the request, then say nothing until the test ends."""
    server.stop.wait(30)


def drip(interval_s: float = 0.05, first: bytes = b"%PDF-1.7\n") -> Behaviour:
    """Headers at once, then a byte every ``interval_s`` for ever (chunk-less, no length)."""

    def behaviour(conn: socket.socket, _: bytes, server: RawServer) -> None:
        conn.sendall(head(200, {"Content-Type": "application/pdf", "Connection": "close"}))
        conn.sendall(first)
        count = len(first)
        while not server.stop.wait(interval_s):
            try:
                conn.sendall(b"x")
            except OSError:
                break
            count += 1
        server.sent.append(count)

    return behaviour


def endless(chunk: bytes = b"\0" * 65536, first: bytes = b"%PDF-1.7\n") -> Behaviour:
    """A close-delimited body with no length that never ends (until the client gives up)."""

    def behaviour(conn: socket.socket, _: bytes, server: RawServer) -> None:
        conn.sendall(head(200, {"Content-Type": "application/pdf", "Connection": "close"}))
        conn.sendall(first)
        count = len(first)
        while not server.stop.is_set():
            try:
                conn.sendall(chunk)
            except OSError:
                break
            count += len(chunk)
        server.sent.append(count)

    return behaviour


def long_length_then_hang(body: bytes) -> Behaviour:
    """``Content-Length`` larger than what is sent, on a connection kept open: a stall."""

    def behaviour(conn: socket.socket, _: bytes, server: RawServer) -> None:
        conn.sendall(
            head(200, {"Content-Type": "application/pdf", "Content-Length": str(len(body) * 2)})
        )
        conn.sendall(body)
        server.stop.wait(30)

    return behaviour


def raw_servers() -> Iterator[Callable[[Behaviour], RawServer]]:
    """Body of a factory fixture: ``make(behaviour)`` starts a :class:`RawServer`; all stop
    when the generator is closed (a test module wraps it: ``yield from raw_servers()``)."""
    servers: list[RawServer] = []

    def make(behaviour: Behaviour) -> RawServer:
        server = RawServer(behaviour)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def gzip_bomb(expanded: int) -> bytes:
    """A gzip stream of ``expanded`` zero bytes, starting like a PDF (≈ 1000:1)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        gz.write(b"%PDF-1.7\n")
        block = b"\0" * (1 << 20)
        left = expanded
        while left > 0:
            gz.write(block[: min(left, len(block))])
            left -= len(block)
    return buf.getvalue()


def dead_port() -> int:
    """A loopback port with no listener (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tls_server(tmp_path: Path) -> Iterator[tuple[Loopback, Any]]:
    """A loopback server speaking TLS with a certificate from a private ``trustme`` CA."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    box = start()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    box.server.socket = context.wrap_socket(box.server.socket, server_side=True)
    try:
        yield box, ca
    finally:
        box.server.shutdown()
        box.server.server_close()


def https_url(box: Loopback, path: str) -> str:
    host, port = box.server.server_address[:2]
    return f"https://{host}:{port}{path}"


# -- running oafetch against them ------------------------------------------------------------------

#: Tests fetch plain URLs: the archive tier must never reach the real archive.org. conftest's
#: ``fast_config`` already disables every internet source; this says so once more, explicitly,
#: for the fault tests (merged into conftest's ``resolvers`` table, not replacing it).
NO_ARCHIVE: dict[str, Any] = {"wayback": {"enabled": False}}


def offline(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the archive tier switched off (unless the test configures resolvers)."""
    return {"resolvers": NO_ARCHIVE, **overrides}


def fetch_one(make_config: Any, url: str, **overrides: Any) -> Any:
    """Fetch one URL work with a fresh :class:`oafetch.Downloader`; return its result."""
    from oafetch import Downloader

    with Downloader(make_config(**offline(overrides)), resume=False) as dl:
        return dl.fetch(url)


def files_under(root: Path) -> list[Path]:
    """Every regular file below ``root`` (hidden ones included)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def stored_files(out: Path) -> list[Path]:
    """Files in the content folders of an output dir (no manifest, lock or telemetry)."""
    return [p for sub in ("pdf", "html", "xml", "other") for p in files_under(out / sub)]


class CatchAll(dict):  # type: ignore[type-arg]
    """A ``Loopback.routes`` replacement that answers every path with one route.

    It reads a request's body first (``loopback`` does not), so a POST on a kept-alive
    connection does not leave its body to be read as the next request.
    """

    def __init__(self, route: Callable[[Any], None]) -> None:
        super().__init__()
        self.route = route

    def get(self, key: Any, default: Any = None) -> Any:
        def drained(handler: Any) -> None:
            # headers and body go out in two writes: without NODELAY, Nagle and delayed ACKs
            # cost ~40 ms per request on loopback
            handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            length = int(handler.headers.get("Content-Length") or 0)
            if length:
                handler.rfile.read(length)
            self.route(handler)

        return drained
