"""Request and response values passed between the HTTP handler and the service imitations.

A service sees a parsed `Request` and returns a `Response`; only `server` touches sockets. A
response either carries its whole `body`, or `chunks` to stream with an announced `length` --
and may deliberately lie: `length` larger than what is sent plus `close=True` is how a
truncated body is produced; `pace` drips chunks slowly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Request:
    """One parsed request.

    Attributes:
        method: upper-case verb.
        path: the percent-decoded path, without the query.
        target: the request target exactly as received (path and query).
        query: decoded query parameters (all values, in order).
        headers: the request headers (case-insensitive lookup).
        body: the request body (empty unless Content-Length was sent).
    """

    method: str
    path: str
    target: str
    query: Mapping[str, list[str]]
    headers: Message
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of query parameter `name`."""
        return list(self.query.get(name, []))

    def header(self, name: str) -> str | None:
        """A request header's value, or None."""
        value = self.headers.get(name)
        return None if value is None else str(value)

    def json(self) -> Any:
        """The body parsed as JSON (None when empty or malformed)."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Response:
    """What to send back.

    Attributes:
        status: HTTP status code.
        headers: extra headers (Content-Length is added by the server).
        body: the body, when not streamed.
        chunks: a body to stream instead of `body`.
        length: the Content-Length to announce (defaults to len(body)).
        pace: seconds to sleep before each chunk.
        close: close the connection after writing.
    """

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    chunks: Iterable[bytes] | None = None
    length: int | None = None
    pace: float = 0.0
    close: bool = False


def _with_type(content_type: str, headers: Headers | None) -> Headers:
    return [("Content-Type", content_type), *(headers or [])]


def json_response(obj: Any, status: int = 200, headers: Headers | None = None) -> Response:
    """A JSON body (compact, UTF-8)."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, _with_type("application/json", headers), body)


def raw_json(body: bytes, status: int = 200, headers: Headers | None = None) -> Response:
    """A pre-encoded JSON body."""
    return Response(status, _with_type("application/json", headers), body)


def text_response(text: str, status: int = 200, headers: Headers | None = None) -> Response:
    """A plain-text body."""
    return Response(status, _with_type("text/plain; charset=utf-8", headers), text.encode())


def html_response(html: str, status: int = 200, headers: Headers | None = None) -> Response:
    """An HTML body."""
    return Response(status, _with_type("text/html; charset=utf-8", headers), html.encode())


def xml_response(
    xml: str,
    status: int = 200,
    content_type: str = "application/xml",
    headers: Headers | None = None,
) -> Response:
    """An XML body (Atom feeds pass their own content type)."""
    return Response(status, _with_type(f"{content_type}; charset=utf-8", headers), xml.encode())


def redirect(location: str, status: int = 302, headers: Headers | None = None) -> Response:
    """A redirect with a short HTML body, as real servers send."""
    body = f'<html><body>Redirecting to <a href="{location}">{location}</a></body></html>'
    extra: Headers = [("Location", location), *(headers or [])]
    return html_response(body, status, extra)
