"""Hard deadlines and interruption at the socket: a server that drips cannot hold a work.

httpx's read timeout bounds the wait for *each* read, so a server that sends its status line
and headers one byte a second never trips it: the request lasts as long as the server likes,
and a blocked ``recv`` does not notice Ctrl-C. This module bounds the I/O itself:

* :class:`DeadlineBackend` wraps httpcore's network backend (the one object every socket of the
  pool comes from). Its streams read in short slices, so a blocked read notices the run's
  cancel event within :data:`SLICE_S`, and no connect, write or read outlives the deadline of
  the current scope.
* :func:`before_send` runs a hook at the first write of a request: the send gate spaces the
  bytes actually leaving for the server, after the pool handed out a connection (a new one's
  TCP and TLS handshakes included), not before.
* :func:`io_deadline` opens such a scope (a context variable: per thread and per context, so
  parallel sources each keep their own). :class:`HeadDeadlineTransport` opens one around each
  request it passes down, covering connect, TLS, the request and the response head — the part
  no body loop can see. Body reads after that are bounded by the download's own deadline
  between chunks (``download.max_body_s``, the work's budget), and still notice cancellation.

Deadline errors are httpcore's own (``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``), so
httpx maps them and :mod:`oafetch.http.errors` translates them as for any other timeout. A
cancelled run raises ``FetchError(cancelled)``: not a failure of the host, so no breaker counts it.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from oafetch.errors import FetchError
from oafetch.tokens import Reason

log = logging.getLogger(__name__)

SLICE_S = 0.25
"""The longest a blocked read waits before it looks at the cancel event and the deadline."""

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "oafetch_io_deadline", default=None
)
# Run once, right before the first byte of the current request is written (the send gate); it
# may return a callable to run once that first write is done.
SendHook = Callable[[], Callable[[], None] | None]
_before_send: contextvars.ContextVar[SendHook | None] = contextvars.ContextVar(
    "oafetch_before_send", default=None
)


@contextmanager
def before_send(hook: SendHook) -> Iterator[list[bool]]:
    """Run ``hook`` just before the block's request writes its first byte to a socket; the
    callable it returns, if any, runs right after that write (the bytes are with the kernel).

    Yields a list that holds ``True`` once the hook ran (it does not run when the request
    never reaches a socket of a :class:`DeadlineBackend`, e.g. under a mock transport).
    """
    ran: list[bool] = []

    def once() -> Callable[[], None] | None:
        ran.append(True)
        return hook()

    token = _before_send.set(once)
    try:
        yield ran
    finally:
        _before_send.reset(token)


@contextmanager
def io_deadline(at: float) -> Iterator[None]:
    """No socket operation in the block may end after ``at`` (a ``time.monotonic()`` value).

    Nested scopes keep the earlier deadline.
    """
    current = _deadline.get()
    token = _deadline.set(at if current is None else min(current, at))
    try:
        yield
    finally:
        _deadline.reset(token)


def _bounded(timeout: float | None, error: type[Exception], what: str) -> float | None:
    """``timeout`` cut to the scope's deadline; raises ``error`` once the deadline passed."""
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error(f"{what}: the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose operations obey :func:`io_deadline` and the cancel event."""

    def __init__(self, inner: httpcore.NetworkStream, cancel: threading.Event) -> None:
        self._inner = inner
        self._cancel = cancel

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._cancel.is_set():
                raise FetchError(Reason.CANCELLED, "run interrupted mid-request")
            left = _bounded(
                None if until is None else until - time.monotonic(), httpcore.ReadTimeout, "read"
            )
            if left is not None and left <= 0:
                raise httpcore.ReadTimeout("read timed out")
            step = SLICE_S if left is None else min(SLICE_S, left)
            try:
                return self._inner.read(max_bytes, step)
            except httpcore.ReadTimeout:
                # A slice ended with nothing read (so nothing lost): look again, unless the
                # caller's own timeout is the one that ran out.
                if until is not None and time.monotonic() >= until:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        hook = _before_send.get()
        sent = None
        if hook is not None:  # the request's first write: the send gate decides now
            _before_send.set(None)
            sent = hook()
        if self._cancel.is_set():
            raise FetchError(Reason.CANCELLED, "run interrupted before the request was sent")
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout, "write"))
        if sent is not None:
            sent()

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "TLS handshake")
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, bounded), self._cancel
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every stream a :class:`DeadlineStream`."""

    def __init__(self, inner: httpcore.NetworkBackend, cancel: threading.Event) -> None:
        self._inner = inner
        self._cancel = cancel

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self._cancel.is_set():
            raise FetchError(Reason.CANCELLED, "run interrupted before connecting")
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "connect")
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return DeadlineStream(stream, self._cancel)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "connect")
        return DeadlineStream(
            self._inner.connect_unix_socket(path, bounded, socket_options), self._cancel
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def socket_transport(
    cancel: threading.Event, *, verify: bool, limits: httpx.Limits
) -> httpx.HTTPTransport:
    """The socket-level transport (no retries), its sockets bounded by :class:`DeadlineBackend`.

    httpx exposes no network-backend argument, so the backend of the transport's pool is
    wrapped in place; should a future httpx lay its pool out otherwise, this logs a warning
    and the transport works without the bound (never fails a download for it).
    """
    transport = httpx.HTTPTransport(retries=0, verify=verify, limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = DeadlineBackend(backend, cancel)  # type: ignore[union-attr]
    else:  # pragma: no cover - depends on httpx's internals
        log.warning("oafetch: cannot bound socket I/O with this httpx; header deadlines are off")
    return transport


class HeadDeadlineTransport(httpx.BaseTransport):
    """Opens an :func:`io_deadline` of ``head_s`` around each request passed down: connect,
    TLS, request and response head must be done within it (body reads are the caller's)."""

    def __init__(self, inner: httpx.BaseTransport, head_s: float) -> None:
        self._inner = inner
        self._head_s = head_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with io_deadline(time.monotonic() + self._head_s):
            return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
