"""The stages of the HTTP stack, each an ``httpx.BaseTransport`` wrapping the next one.

Order, outer → inner (built in one place, :class:`oafetch.http.client.HttpClient`)::

    Guard → Robots → [cache] → Breaker → RateLimit → OTel CLIENT span → PropagationFilter
          → SendGate → HeadDeadline → HTTPTransport (sockets bounded by DeadlineBackend)

* ``GuardTransport`` refuses non-HTTP(S) schemes and redirects from a public host into private,
  loopback or link-local addresses, and strips credential headers on a cross-host hop.
* ``RobotsTransport`` asks robots.txt for landing/artifact requests (not API metadata).
* A cache hit (when a cache stage is configured) spends nothing below it.
* ``BreakerTransport`` fails fast when the host's breaker is open: no token is spent.
* ``RateLimitTransport`` makes every attempt and every redirect hop pay for a rate slot.
* ``PropagationFilterTransport`` keeps trace-context headers for opted-in hosts only.
* ``SendGateTransport`` spaces the actual sends, in case a reserved slot was taken late.
* ``HeadDeadlineTransport`` (:mod:`oafetch.http.deadline`) bounds connect, request and head.

Per-request facts travel in ``request.extensions["oafetch"]`` (a dict shared by all hops of a
request): the stages write ``host``, ``url_hash``, ``url_redacted``, ``breaker_state``,
``rate_delay_ms``; the OTel hooks copy them onto the CLIENT span.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from oafetch.errors import FetchError, RobotsDisallowed
from oafetch.http.breakers import Breakers, is_failure
from oafetch.http.ratelimit import RateBudgetExceeded, RateLimiter
from oafetch.http.retry import parse_retry_after
from oafetch.http.robots import RobotsCache
from oafetch.telemetry.emit import emit_rate_event
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Reason, Role
from oafetch.urls import SECRET_HEADERS, redact_url, url_hash

META = "oafetch"


def meta_of(request: httpx.Request) -> dict[str, Any]:
    """The oafetch facts dict of a request (created empty if the caller gave none)."""
    meta = request.extensions.get(META)
    if meta is None:
        meta = {}
        request.extensions[META] = meta
    return meta


def _is_private(host: str) -> bool:
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    return any(
        a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_unspecified
        for a in addresses
    )


def refused_redirect(origin_host: str, target: httpx.URL, *, block_private: bool) -> str | None:
    """Why a hop from ``origin_host`` to ``target`` is refused, or ``None`` when it is allowed.

    Only http(s) is fetched; with ``block_private``, a public origin may not lead into
    loopback, private, link-local or reserved addresses (SSRF). Loopback to loopback is fine.
    """
    if target.scheme not in ("http", "https"):
        return f"refused {target.scheme}: URL {redact_url(str(target))}"
    if (
        block_private
        and target.host != origin_host
        and not _is_private(origin_host)
        and _is_private(target.host)
    ):
        return f"refused to follow public host {origin_host} into private address {target.host}"
    return None


class GuardTransport(httpx.BaseTransport):
    """Network policy for every hop: schemes, SSRF on redirects, credential headers."""

    def __init__(self, inner: httpx.BaseTransport, *, block_private_redirects: bool) -> None:
        self._inner = inner
        self._block_private = block_private_redirects

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        meta = meta_of(request)
        url = request.url
        origin = meta.setdefault("origin_host", url.host)
        if url.host != origin:
            for name in list(request.headers):
                if name.lower() in SECRET_HEADERS:
                    del request.headers[name]
        refusal = refused_redirect(origin, url, block_private=self._block_private)
        if refusal is not None:
            raise FetchError(Reason.REDIRECT, refusal, url=redact_url(str(url)))
        meta["host"] = url.host
        meta["url_hash"] = url_hash(str(url))
        meta["url_redacted"] = redact_url(str(url))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class RobotsTransport(httpx.BaseTransport):
    """robots.txt for landing and artifact requests; Crawl-delay slows the host's limiter."""

    def __init__(
        self, inner: httpx.BaseTransport, robots: RobotsCache, limiter: RateLimiter
    ) -> None:
        self._inner = inner
        self._robots = robots
        self._limiter = limiter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        meta = meta_of(request)
        if meta.get("role") in (Role.LANDING, Role.ARTIFACT) and not meta.get("skip_robots"):
            url = str(request.url)
            verdict = self._robots.check(url)
            if not verdict.allowed:
                raise RobotsDisallowed(redact_url(url))
            if verdict.crawl_delay_s:
                self._limiter.slow_to(request.url.host, verdict.crawl_delay_s)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class BreakerTransport(httpx.BaseTransport):
    """Fails fast while the host's breaker is open; reports every answer to the breaker."""

    def __init__(self, inner: httpx.BaseTransport, breakers: Breakers) -> None:
        self._inner = inner
        self._breakers = breakers

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        meta = meta_of(request)
        meta["breaker_state"] = self._breakers.before(host)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError:
            self._breakers.record(host, failure=True)
            raise
        except BaseException:
            # oafetch's own refusals before the send (a rate slot too far, robots.txt, a
            # cancelled run) and anything else that is not the host's answer: no evidence
            # either way (a half-open probe that was never sent must not close the breaker,
            # nor a cancelled one open it for another reset timeout)
            self._breakers.release(host)
            raise
        challenge = response.headers.get("cf-mitigated", "").lower() == "challenge"
        self._breakers.record(host, failure=is_failure(response.status_code, challenge))
        return response

    def close(self) -> None:
        self._inner.close()


class RateLimitTransport(httpx.BaseTransport):
    """Waits for the host's next rate slot (every attempt, every hop), within a budget."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        limiter: RateLimiter,
        *,
        telemetry: Telemetry,
        max_wait_s: float,
        adapt_to_headers: bool,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._telemetry = telemetry
        self._max_wait_s = max_wait_s
        self._adapt = adapt_to_headers
        self._wait = wait or threading.Event().wait

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        meta = meta_of(request)
        role = str(meta.get("role", Role.METADATA))
        budget = meta.get("max_rate_wait_s", self._max_wait_s)
        # A parked work's kept slot belongs to its host: a hop to another host (doi.org before
        # the publisher) neither uses nor drops it.
        reservation = meta.get("rate_reservation")
        try:
            if reservation is not None and reservation[0] == host:
                del meta["rate_reservation"]
                delay = self._limiter.take(reservation[1])
            else:
                delay = self._limiter.reserve(
                    host, max_wait_s=budget, keep=bool(meta.get("keep_slot"))
                )
        except RateBudgetExceeded as exc:
            exc.url = str(request.url)
            emit_rate_event(
                host=host,
                role=role,
                action="block",
                delay_ms=exc.wait_s * 1000,
                max_delay_ms=budget * 1000,
                telemetry=self._telemetry,
            )
            raise
        if delay > 0 and self._wait(delay):
            raise FetchError(Reason.CANCELLED, "run interrupted while waiting for a rate slot")
        meta["rate_delay_ms"] = delay * 1000
        emit_rate_event(
            host=host,
            role=role,
            action="acquire",
            delay_ms=delay * 1000,
            max_delay_ms=budget * 1000,
            telemetry=self._telemetry,
        )
        response = self._inner.handle_request(request)
        if response.status_code in (429, 503):
            pause = parse_retry_after(response.headers.get("retry-after"))
            if pause:
                self._limiter.pause(host, pause)
        if self._adapt:
            self._limiter.observe_headers(host, response.headers)
        return response

    def close(self) -> None:
        self._inner.close()


class SendGateTransport(httpx.BaseTransport):
    """Spaces the *actual* sends to a host (see ``RateLimiter.gate``).

    A reserved slot can be taken late (a thread woke up late); the gate keeps two sends from
    reaching the server closer than the policy says. With ``at_socket`` (the inner transport's
    sockets come from :class:`~oafetch.http.deadline.DeadlineBackend`), the gate runs at the
    request's first socket write — after the pool's connection acquisition and any TCP/TLS
    handshake, as close to the server's clock as the stack allows; otherwise before passing the
    request down. Its waits are short, keep the worker's slot and end on cancel.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        limiter: RateLimiter,
        cancel: threading.Event,
        *,
        at_socket: bool = False,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._cancel = cancel
        self._at_socket = at_socket

    def _gate(self, request: httpx.Request) -> Callable[[], None]:
        """Waits until the host's gate lets the request go; returns what to run once it left."""
        host = request.url.host
        limiter = self._limiter
        again = False
        while True:
            asked = time.monotonic()
            wait = limiter.gate(host, again=again)
            again = True
            if wait <= limiter.book_ahead_s:  # booked: due in ``wait``
                if time.monotonic() - asked > limiter.gate_stale_s:
                    # the answer came back late (a remote gate): the send it booked would
                    # reach the host later than the gate recorded it, so closer to the next
                    # one; ask again (the host is charged one slot more, never a send too close)
                    continue
                self._sleep(request, wait)
                return lambda: self._left(host, asked + wait)
            # not due yet: ask again shortly before the wait ends, to be booked then
            self._sleep(request, wait - limiter.book_ahead_s / 2)

    def _sleep(self, request: httpx.Request, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._cancel.wait(seconds):
            raise FetchError(Reason.CANCELLED, "run interrupted while waiting for a rate slot")
        meta = meta_of(request)
        meta["rate_delay_ms"] = meta.get("rate_delay_ms", 0.0) + seconds * 1000

    def _left(self, host: str, due: float) -> None:
        """The request's bytes left: if that was later after the moment the gate booked than
        its margins absorb (the thread stalled), the gate holds the next sends to now."""
        if time.monotonic() - due > self._limiter.jitter_s:
            self._limiter.sent_late(host)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self._at_socket:
            self._gate(request)  # no socket hook: when the bytes left is not known here
            return self._inner.handle_request(request)
        from oafetch.http.deadline import before_send

        with before_send(lambda: self._gate(request)):
            return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


class PropagationFilterTransport(httpx.BaseTransport):
    """Removes the W3C trace-context headers the instrumentation injected, unless the request
    goes to a host the user opted in (``telemetry.propagate_to``): oafetch's trace ids are no
    business of publishers and APIs."""

    def __init__(self, inner: httpx.BaseTransport, propagate_to: tuple[str, ...]) -> None:
        self._inner = inner
        self._hosts = frozenset(h.lower().rstrip(".") for h in propagate_to)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.lower().rstrip(".") not in self._hosts:
            for name in TRACE_HEADERS:
                if name in request.headers:
                    del request.headers[name]
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
