"""The shared HTTP client: one ``httpx.Client`` over the composed transport stack.

:class:`HttpClient` is what resolvers and the download code hold. It builds the stack (see
:mod:`oafetch.http.transports` for the order and why), sends requests with the polite headers
and the per-request facts, retries whole attempts with :class:`~oafetch.http.retry.RetryPolicy`,
and translates every httpx exception at one boundary (:mod:`oafetch.http.errors`).

Thread-safety: one instance is shared by all worker threads of a run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from oafetch.config import Config
from oafetch.errors import FetchError, ResolverError
from oafetch.http.breakers import Breakers
from oafetch.http.deadline import HeadDeadlineTransport, socket_transport
from oafetch.http.decoding import ACCEPT_ENCODING, decoded_chunks
from oafetch.http.errors import check_status, translate
from oafetch.http.ratelimit import RateLimiter
from oafetch.http.retry import RetryPolicy
from oafetch.http.robots import MAX_ROBOTS_BYTES, RobotsCache
from oafetch.http.tdmrep import TdmRepCache, TdmTransport
from oafetch.http.transports import (
    META,
    BreakerTransport,
    GuardTransport,
    PropagationFilterTransport,
    RateLimitTransport,
    RobotsTransport,
    SendGateTransport,
    refused_redirect,
)
from oafetch.rates import DEFAULT_RATE_GROUPS
from oafetch.telemetry.emit import emit_breaker_transition, emit_retry
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Reason, Role, Status
from oafetch.urls import redact_text, redact_url, scrub
from oafetch.waiting import idle_wait

log = logging.getLogger("oafetch")
T = TypeVar("T")

CacheWrapper = Callable[[httpx.BaseTransport], httpx.BaseTransport]


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; its credential parameters are redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


class _RedactText(logging.Filter):
    """httpcore logs response headers at DEBUG, a redirect's ``Location`` among them, and an
    API may echo the ``api_key`` it was asked with into it: credential pairs are redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message or "@" in message:
            record.msg, record.args = redact_text(message), ()
        return True


_REDACT_URLS = _RedactUrls()
_REDACT_TEXT = _RedactText()
# A filter applies only on the logger that makes the record, not on its parents: every
# httpcore logger is named.
_HTTPCORE_LOGGERS = (
    "httpcore",
    "httpcore.connection",
    "httpcore.connection_pool",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def _redact_httpx_logs() -> None:
    logger = logging.getLogger("httpx")
    if _REDACT_URLS not in logger.filters:
        logger.addFilter(_REDACT_URLS)
    for name in _HTTPCORE_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT_TEXT not in logger.filters:
            logger.addFilter(_REDACT_TEXT)


@dataclass(frozen=True)
class TextResponse:
    """A fully read response: final URL (after redirects), status, headers, text."""

    url: str
    status: int
    headers: httpx.Headers
    text: str
    content_type: str


class HttpClient:
    """The polite, retried, observable HTTP client of one run.

    Args:
        config: the run's configuration.
        telemetry: the handle spans and events go to (``Telemetry.noop()`` to disable).
        tracer_provider / meter_provider: for the CLIENT spans (``None``: the ``telemetry``
            handle's providers, never the global ones by accident).
        transport: the innermost transport (default ``httpx.HTTPTransport``; tests may pass one).
        cache: wraps the breaker stage with a cache stage (hits spend no token, no breaker call).
        cancel: set it to interrupt rate-limit and retry waits (Ctrl-C).
        limiter: a rate limiter shared beyond this client (one cluster-wide budget per host,
            ``oafetch.engines``); default: this client's own.
    """

    def __init__(
        self,
        config: Config,
        telemetry: Telemetry | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        transport: httpx.BaseTransport | None = None,
        cache: CacheWrapper | None = None,
        cancel: threading.Event | None = None,
        secrets: tuple[str, ...] = (),
        limiter: RateLimiter | None = None,
    ) -> None:
        _redact_httpx_logs()
        self.config = config
        self.telemetry = telemetry or Telemetry.noop()
        self.cancel = cancel or threading.Event()
        self.secrets = tuple(s for s in (config.mailto, *secrets) if s)
        self.limiter = limiter or RateLimiter(
            config.rate_policy,
            groups={**DEFAULT_RATE_GROUPS},
            enabled=config.politeness.enabled,
        )
        self.breakers = Breakers(config.breaker, on_transition=self._on_transition)
        self.retry = RetryPolicy(config.retry, sleep=self._sleep)
        http = config.http
        inner = transport or socket_transport(
            self.cancel,
            verify=http.verify_tls,
            limits=httpx.Limits(
                max_connections=http.max_connections,
                max_keepalive_connections=http.max_keepalive_connections,
            ),
        )
        # connect, request and response head within a deadline (a dripping server ends)
        inner = HeadDeadlineTransport(inner, self.body_deadline_s)
        # oafetch's own sockets gate at their first write; a given transport, before it
        inner = SendGateTransport(inner, self.limiter, self.cancel, at_socket=transport is None)
        # below the CLIENT span: what the instrumentation injects is filtered per host
        inner = PropagationFilterTransport(inner, config.telemetry.propagate_to)
        if self.telemetry.enabled:
            from oafetch.telemetry.client_spans import instrumented_transport

            inner = instrumented_transport(
                inner,
                tracer_provider=tracer_provider or self.telemetry.tracer_provider,
                meter_provider=meter_provider or self.telemetry.meter_provider,
            )
        below_cache: httpx.BaseTransport = RateLimitTransport(
            inner,
            self.limiter,
            telemetry=self.telemetry,
            max_wait_s=config.politeness.max_wait_s,
            adapt_to_headers=config.politeness.adapt_to_headers,
            wait=self._wait,
        )
        below_cache = BreakerTransport(below_cache, self.breakers)
        stage = cache(below_cache) if cache else below_cache
        self.robots = RobotsCache(config.robots, self._fetch_robots, cancel=self.cancel)
        self._below_robots = stage
        # tdm = true: TDM reservations (header, the origin's tdmrep.json), after robots.txt
        self.tdmrep = TdmRepCache(config.robots, self._fetch_robots, cancel=self.cancel)
        if config.download.tdm:
            stage = TdmTransport(stage, self.tdmrep)
        stage = RobotsTransport(stage, self.robots, self.limiter)
        stage = GuardTransport(stage, block_private_redirects=http.block_private_redirects)
        self._client = httpx.Client(
            transport=stage,
            # only the codings decoded with a bound (a coding sent unasked is refused)
            headers={"User-Agent": config.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(
                connect=http.connect_timeout_s,
                read=http.read_timeout_s,
                write=http.write_timeout_s,
                pool=http.pool_timeout_s,
            ),
            follow_redirects=True,
            max_redirects=http.max_redirects,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _wait(self, seconds: float) -> bool:
        return idle_wait(self.cancel, seconds)

    def _sleep(self, seconds: float) -> None:
        if self._wait(seconds):
            raise FetchError(Reason.CANCELLED, "run interrupted during a retry wait")

    def _on_transition(self, host: str, old: str, new: str, reset_timeout_s: float) -> None:
        emit_breaker_transition(
            host=host,
            scope="host",
            old_state=old,
            new_state=new,
            reset_timeout_s=reset_timeout_s,
            telemetry=self.telemetry,
        )

    def _fetch_robots(self, url: str) -> tuple[int | None, str]:
        """robots.txt (or ``/.well-known/tdmrep.json``): the answer another worker of the run
        already fetched (a cluster's limiter keeps them), else fetched here and offered."""
        try:
            known = self.limiter.known_robots(url)
        except Exception as exc:  # the shared store is out of reach: ask the host itself
            log.debug("robots answer of %s not shared: %s", redact_url(url), exc)
            return self._get_robots(url)
        if known is not None:
            return known
        answer = self._get_robots(url)
        with contextlib.suppress(Exception):
            self.limiter.remember_robots(url, *answer)
        return answer

    def _get_robots(self, url: str) -> tuple[int | None, str]:
        """GET robots.txt (or ``/.well-known/tdmrep.json``) below the robots stage (cached,
        breaker-guarded, rate-limited, at most 512 KiB decoded)."""
        for _ in range(5):
            request = httpx.Request(
                "GET",
                url,
                headers={"User-Agent": self.config.user_agent},
                extensions={
                    META: {"role": Role.LANDING, "robots": True},
                    "timeout": self._client.timeout.as_dict(),
                },
            )
            deadline = time.monotonic() + self.body_deadline_s
            try:
                response = self._below_robots.handle_request(request)
                try:
                    body = b""
                    for chunk in decoded_chunks(response, MAX_ROBOTS_BYTES):
                        body += chunk
                        if len(body) > MAX_ROBOTS_BYTES:
                            break
                        if time.monotonic() > deadline:  # a slow drip: unreachable
                            return None, ""
                finally:
                    response.close()
            except (httpx.HTTPError, FetchError):
                return None, ""
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                try:
                    target = httpx.URL(url).join(response.headers["location"])
                except httpx.InvalidURL:
                    return None, ""
                # This fetch runs below the guard stage: apply its rules to the hop here.
                if not refused_redirect(
                    httpx.URL(url).host,
                    target,
                    block_private=self.config.http.block_private_redirects,
                ):
                    url = str(target)
                    continue
                return None, ""
            return response.status_code, body.decode("utf-8", errors="replace")
        return None, ""

    @property
    def body_deadline_s(self) -> float:
        """The longest a metadata or robots.txt body may take to arrive (a slow drip ends)."""
        return min(self.config.download.max_body_s, self.config.fallback.per_source_timeout_s)

    def _message(self, text: str) -> str:
        return scrub(text, self.secrets)

    # -- one attempt --------------------------------------------------------------------------
    def send(
        self,
        method: str,
        url: str,
        *,
        role: Role,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        stream: bool = False,
        retry_count: int = 0,
        max_rate_wait_s: float | None = None,
        follow_redirects: bool = True,
        skip_robots: bool = False,
        keep_slot: bool = False,
        reservation: tuple[str, float] | None = None,
        origin_host: str | None = None,
    ) -> httpx.Response:
        """Send one attempt (no retry); the response is unread when ``stream`` is True.

        ``origin_host``: the host that named ``url`` (the API or page a candidate came from);
        the guard then treats the first hop like a redirect from it (no public → private).

        ``keep_slot``: when the rate wait exceeds ``max_rate_wait_s``, keep the slot anyway and
        hand it back in the :class:`RateBudgetExceeded` (a parked work's place in the queue);
        ``reservation`` (host, start) uses such a slot instead of reserving a new one.

        Raises:
            FetchError: the request failed (translated; its message carries no secret).
        """
        meta: dict[str, Any] = {"role": role, "retry_count": retry_count}
        if max_rate_wait_s is not None:
            meta["max_rate_wait_s"] = max_rate_wait_s
        if skip_robots:
            meta["skip_robots"] = True
        if keep_slot:
            meta["keep_slot"] = True
        if reservation is not None:
            meta["rate_reservation"] = reservation
        if origin_host:
            meta["origin_host"] = origin_host
        try:
            request = self._client.build_request(
                method,
                url,
                params=params,
                headers=headers,
                json=json_body,
                extensions={META: meta},
            )
        except httpx.InvalidURL as exc:
            error = translate(exc, url)
            error.args = (self._message(str(error)),)
            raise error from None
        try:
            return self._client.send(request, stream=stream, follow_redirects=follow_redirects)
        except FetchError as exc:
            exc.args = (self._message(str(exc)),)
            raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = translate(exc, url, sent=True)
            error.args = (self._message(str(error)),)
            raise error from None

    def retrying(
        self,
        attempt: Callable[[int], T],
        *,
        on_retry: Callable[[int, float, Reason, FetchError], None] | None = None,
    ) -> T:
        """Run ``attempt(retry_count)`` under the retry policy, recording each retry."""

        def record(number: int, sleep_s: float, reason: Reason, error: FetchError) -> None:
            emit_retry(attempt=number, sleep_s=sleep_s, reason=reason, telemetry=self.telemetry)
            if on_retry:
                on_retry(number, sleep_s, reason, error)

        return self.retry.call(attempt, on_retry=record)

    # -- whole, retried requests --------------------------------------------------------------
    def get_text(
        self,
        url: str,
        *,
        role: Role = Role.METADATA,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        throttle_statuses: frozenset[int] = frozenset(),
        max_bytes: int = 16 * 1024 * 1024,
    ) -> TextResponse:
        """Fetch ``url`` fully (retried) and return its text.

        Raises:
            FetchError: after the retry policy gave up, or at once for a non-retryable answer.
        """

        def attempt(retry_count: int) -> TextResponse:
            response = self.send(
                method,
                url,
                role=role,
                params=params,
                headers=headers,
                json_body=json_body,
                stream=True,
                retry_count=retry_count,
            )
            try:
                check_status(response, throttle_statuses=throttle_statuses)
                body = bytearray()
                deadline = time.monotonic() + self.body_deadline_s
                try:
                    for chunk in decoded_chunks(response, 256 * 1024):
                        body += chunk
                        if len(body) > max_bytes:
                            raise FetchError(
                                Reason.POLICY_SIZE,
                                f"response from {redact_url(url)} exceeds {max_bytes} bytes",
                            )
                        if time.monotonic() > deadline:
                            raise FetchError(
                                Reason.TIMEOUT,
                                f"response from {redact_url(url)} still arriving after the "
                                f"{self.body_deadline_s:g}s deadline",
                            )
                except httpx.HTTPError as exc:
                    raise translate(exc, url) from None
                return TextResponse(
                    url=str(response.url),
                    status=response.status_code,
                    headers=response.headers,
                    text=bytes(body).decode(response.encoding or "utf-8", errors="replace"),
                    content_type=response.headers.get("content-type", ""),
                )
            finally:
                response.close()

        return self.retrying(attempt)

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        json_body: Any = None,
        throttle_statuses: frozenset[int] = frozenset(),
    ) -> Any:
        """Fetch and parse a JSON API answer (role ``metadata``, retried).

        Raises:
            FetchError: network or status failure (404 → ``not-found``).
            ResolverError: the body is not valid JSON (``bad-response``).
        """
        response = self.get_text(
            url,
            params=params,
            headers={"Accept": "application/json", **(headers or {})},
            method=method,
            json_body=json_body,
            throttle_statuses=throttle_statuses,
        )
        try:
            return json.loads(response.text)
        except (ValueError, RecursionError) as exc:  # deep nesting exhausts the parser's stack
            raise ResolverError(
                Reason.BAD_RESPONSE,
                self._message(f"invalid JSON from {redact_url(url)}: {exc}"),
                status=Status.HTTP_200,
                http_status=response.status,
                url=redact_url(url),
            ) from None

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        role: Role,
        retry_count: int = 0,
        headers: Mapping[str, str] | None = None,
        max_rate_wait_s: float | None = None,
        origin_host: str | None = None,
    ) -> Iterator[httpx.Response]:
        """One streamed GET attempt (caller checks status and reads the body)."""
        response = self.send(
            "GET",
            url,
            role=role,
            stream=True,
            retry_count=retry_count,
            headers=headers,
            max_rate_wait_s=max_rate_wait_s,
            origin_host=origin_host,
        )
        try:
            yield response
        finally:
            response.close()


def monotonic_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - start) * 1000.0
