"""The small HTTP server both Prometheus endpoints run on (a live run's and ``telemetry serve``).

prometheus_client's ``start_http_server`` serves a registry as it is. oafetch's endpoints choose
what a scrape sees (the store's cached figures; a run's final counts once it ended) and need to
know when a scrape was served, so each builds its own WSGI app and serves it here: one thread per
request, IPv4 or IPv6 by the host's form, and no access-log line per scrape.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import ThreadingWSGIServer

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (a scrape every few seconds would drown the terminal)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _V6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


def bind(host: str, port: int, app: WsgiApp) -> WSGIServer:
    """A threaded server for ``app``, bound to ``host:port`` (port 0: any free port).

    Binds at once; call ``serve_forever()`` (it blocks) to serve, ``shutdown()`` from another
    thread to stop, ``server_close()`` to release the socket.

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """
    server_class = _V6Server if ":" in host else ThreadingWSGIServer
    return make_server(host, port, app, server_class, handler_class=_QuietHandler)


def url_of(server: WSGIServer, path: str = "/metrics") -> str:
    """``http://host:port/path`` of a bound server (IPv6 hosts in brackets)."""
    host = str(server.server_address[0])
    return f"http://{f'[{host}]' if ':' in host else host}:{server.server_port}{path}"


def after_sent(body: Iterable[bytes], done: Callable[[], None]) -> Iterator[bytes]:
    """``body``, then ``done()`` once its last chunk was written to the client.

    The WSGI server asks for the next chunk only after writing the previous one, so code after
    the last ``yield`` runs when the whole response is out; a client that hangs up midway stops
    the iteration and ``done`` is not called.
    """
    yield from body
    done()
